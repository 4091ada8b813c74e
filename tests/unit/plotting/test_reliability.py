"""The reliability diagram (course_utils/plotting/reliability.py) draws the calibration bins."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from helpers import random_probs
from course_utils.metrics import calibration_bins, confidence_and_correct
from course_utils.plotting import reliability_diagram


def test_reliability_diagram_draws_a_bar_per_non_empty_bin():
    probs, labels = random_probs(3)
    fig, ax = plt.subplots()
    out = reliability_diagram(probs, labels, n_bins=8, ax=ax, title="t")
    assert out is ax and ax.get_title() == "t"
    conf, correct = confidence_and_correct(probs, labels)
    count, _, acc = calibration_bins(conf, correct, 8)
    heights = [p.get_height() for p in ax.containers[0]]
    np.testing.assert_allclose(heights, acc[count > 0])
    plt.close(fig)
