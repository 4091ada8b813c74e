"""Calibration bins (course_utils/metrics/calibration.py) against scipy.stats.binned_statistic."""

import numpy as np
import pytest
from scipy.stats import binned_statistic

from helpers import random_probs
from course_utils.metrics import calibration_bins, confidence_and_correct


def test_bin_statistics_match_scipy_binned_statistic():
    probs, labels = random_probs()
    conf, correct = confidence_and_correct(probs, labels)
    count, mean_conf, acc = calibration_bins(conf, correct, 10)
    edges = np.linspace(0, 1, 11)
    # scipy's bins are [lo, hi); ours are (lo, hi]: identical for continuous confidences
    ref_count = binned_statistic(conf, conf, "count", bins=edges).statistic
    ref_conf = binned_statistic(conf, conf, "mean", bins=edges).statistic
    ref_acc = binned_statistic(conf, correct.astype(float), "mean", bins=edges).statistic
    np.testing.assert_array_equal(count, ref_count)
    np.testing.assert_allclose(mean_conf, ref_conf, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(acc, ref_acc, rtol=1e-12, equal_nan=True)


def test_confidence_one_falls_in_the_last_bin():
    count, _, _ = calibration_bins(np.array([1.0, 0.05, 0.1]), np.array([True, False, True]), 10)
    assert count[-1] == 1 and count[0] == 2  # 0.1 belongs to (0, 0.1]


def test_pixel_maps_are_flattened_like_a_list_of_pixels():
    probs, labels = random_probs(1, shape=(3, 5, 4, 6))
    conf4, corr4 = confidence_and_correct(probs, labels)
    flat = probs.permute(0, 2, 3, 1).reshape(-1, 5)
    conf2, corr2 = confidence_and_correct(flat, labels.reshape(-1))
    np.testing.assert_array_equal(conf4, conf2)
    np.testing.assert_array_equal(corr4, corr2)
    assert conf4.shape == (3 * 4 * 6,)


def test_wrong_inputs_get_errors_that_name_the_shapes():
    probs, labels = random_probs(2, shape=(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        confidence_and_correct(probs, labels[:, :3])
    with pytest.raises(ValueError, match="probabilities"):
        confidence_and_correct(10 * probs, labels)
    with pytest.raises(TypeError, match="integer"):
        confidence_and_correct(probs, labels.double())
    with pytest.raises(ValueError, match=r"\(P, C\)"):
        confidence_and_correct(probs[0], labels[0])
