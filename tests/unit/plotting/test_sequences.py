"""Drawing digit sequences and transition matrices (course_utils/plotting/sequences.py)."""

from __future__ import annotations

import numpy as np
import pytest

from course_utils.data.digit_sequences import digit_sequences
from course_utils.plotting import plot_transitions, show_digit_sequences


def test_plots_draw_and_reject_wrong_shapes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = digit_sequences(3, 6, "test", seed=0)
    fig = show_digit_sequences(data, n=2, frames=5, predictions={"network": data.labels})
    assert len(fig.axes) == 10
    with pytest.raises(ValueError, match="shape"):
        show_digit_sequences(data, predictions={"network": data.labels[:, :3]})
    axes = plot_transitions({"true": data.transition, "empirical": data.empirical_transition()})
    assert len(axes) == 2
    with pytest.raises(ValueError, match="square"):
        plot_transitions({"bad": np.ones((2, 3))})
    plt.close("all")
