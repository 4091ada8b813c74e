"""course_utils: the code the notebooks of *Labeling pixels with fully-convolutional networks* import.

It holds the machinery around the exercises (device and profiles, data sets, plotting, training
loops, metrics that are not the point of a lab, the labs' by-hand rules); whatever a lab asks a
student to write is not here. The grader is instructor tooling (``tools/course_tools``). Each
module's docstring names the chapter that teaches its idea.
"""

from .checks import answered
from .runtime import PROFILES, Setup, get_device, get_profile, seed_everything, setup, sizes_for

__version__ = "0.1.0"
__all__ = ["answered", "PROFILES", "Setup", "get_device", "get_profile", "seed_everything", "setup", "sizes_for"]
