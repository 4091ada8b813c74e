"""Reliability-diagram statistics against scipy.stats.binned_statistic."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy.stats import binned_statistic

from course_utils.calibration import _bin_statistics, _confidence_and_correct, reliability_diagram


def random_probs(seed=0, shape=(500, 4)):
    g = torch.Generator().manual_seed(seed)
    probs = (2 * torch.randn(shape, generator=g, dtype=torch.float64)).softmax(dim=1)
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return probs, labels


def test_bin_statistics_match_scipy_binned_statistic():
    probs, labels = random_probs()
    conf, correct = _confidence_and_correct(probs, labels)
    count, mean_conf, acc = _bin_statistics(conf, correct, 10)
    edges = np.linspace(0, 1, 11)
    # scipy's bins are [lo, hi); ours are (lo, hi]: identical for continuous confidences
    ref_count = binned_statistic(conf, conf, "count", bins=edges).statistic
    ref_conf = binned_statistic(conf, conf, "mean", bins=edges).statistic
    ref_acc = binned_statistic(conf, correct.astype(float), "mean", bins=edges).statistic
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_allclose(mean_conf, ref_conf, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(acc, ref_acc, rtol=1e-12, equal_nan=True)


def test_confidence_one_falls_in_the_last_bin():
    count, _, _ = _bin_statistics(np.array([1.0, 0.05, 0.1]), np.array([True, False, True]), 10)
    assert count[-1] == 1 and count[0] == 2  # 0.1 belongs to (0, 0.1]


def test_pixel_maps_are_flattened_like_a_list_of_pixels():
    probs, labels = random_probs(1, shape=(3, 5, 4, 6))
    conf4, corr4 = _confidence_and_correct(probs, labels)
    flat = probs.permute(0, 2, 3, 1).reshape(-1, 5)
    conf2, corr2 = _confidence_and_correct(flat, labels.reshape(-1))
    np.testing.assert_array_equal(conf4, conf2)
    np.testing.assert_array_equal(corr4, corr2)
    assert conf4.shape == (3 * 4 * 6,)


def test_wrong_inputs_get_errors_that_name_the_shapes():
    probs, labels = random_probs(2, shape=(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        _confidence_and_correct(probs, labels[:, :3])
    with pytest.raises(ValueError, match="probabilities"):
        _confidence_and_correct(10 * probs, labels)
    with pytest.raises(TypeError, match="integer"):
        _confidence_and_correct(probs, labels.double())
    with pytest.raises(ValueError, match=r"\(P, C\)"):
        _confidence_and_correct(probs[0], labels[0])


def test_reliability_diagram_draws_a_bar_per_non_empty_bin():
    probs, labels = random_probs(3)
    fig, ax = plt.subplots()
    out = reliability_diagram(probs, labels, n_bins=8, ax=ax, title="t")
    assert out is ax and ax.get_title() == "t"
    conf, correct = _confidence_and_correct(probs, labels)
    count, _, acc = _bin_statistics(conf, correct, 8)
    heights = [p.get_height() for p in ax.containers[0]]
    np.testing.assert_allclose(heights, acc[count > 0])
    plt.close(fig)
