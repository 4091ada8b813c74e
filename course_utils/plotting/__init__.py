"""Plots: masks with a legend, training curves, graphs of layers, digit sequences, reliability
diagrams, and the transposed-convolution player."""

from .curves import plot_curves
from .graphs import draw_dag
from .masks import PALETTE, mask_cmap, show_mask, show_scenes
from .reliability import reliability_diagram
from .sequences import plot_transitions, show_digit_sequences

__all__ = ["plot_curves", "draw_dag", "PALETTE", "mask_cmap", "show_mask", "show_scenes", "reliability_diagram",
           "plot_transitions", "show_digit_sequences"]
