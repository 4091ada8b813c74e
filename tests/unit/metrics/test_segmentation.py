"""Segmentation metrics against scikit-learn and brute-force counts."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion

from course_utils.metrics import boundary_f1, confusion_matrix, scores_from_confusion


def random_maps(seed=0, k=5, shape=(3, 17, 13)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, k, shape, generator=g), torch.randint(0, k, shape, generator=g)


def test_confusion_matrix_matches_scikit_learn():
    pred, target = random_maps()
    ours = confusion_matrix(pred, target, 5)
    ref = sk_confusion(target.flatten().numpy(), pred.flatten().numpy(), labels=range(5))
    np.testing.assert_array_equal(ours.numpy(), ref)


def test_confusion_matrix_skips_the_ignore_label():
    pred, target = random_maps(1)
    target[:, :4] = 255
    keep = target != 255
    ours = confusion_matrix(pred, target, 5, ignore_index=255)
    ref = sk_confusion(target[keep].numpy(), pred[keep].numpy(), labels=range(5))
    np.testing.assert_array_equal(ours.numpy(), ref)


def test_scores_match_a_brute_force_count():
    pred, target = random_maps(2, k=4)
    s = scores_from_confusion(confusion_matrix(pred, target, 4))
    p, t = pred.flatten().numpy(), target.flatten().numpy()
    ious = [((p == c) & (t == c)).sum() / ((p == c) | (t == c)).sum() for c in range(4)]
    accs = [((p == c) & (t == c)).sum() / (t == c).sum() for c in range(4)]
    freq = [(t == c).mean() for c in range(4)]
    assert s["pixel_acc"] == pytest.approx((p == t).mean())
    assert s["mean_iou"] == pytest.approx(np.mean(ious))
    assert s["mean_acc"] == pytest.approx(np.mean(accs))
    assert s["fw_iou"] == pytest.approx(np.dot(freq, ious))


def test_absent_classes_are_left_out_of_the_means():
    target = torch.tensor([[0, 0, 1, 1]])
    s = scores_from_confusion(confusion_matrix(target, target, 5))
    assert s["mean_iou"] == 1.0 and torch.isnan(s["per_class_iou"][2:]).all()


def test_metrics_refuse_scores_instead_of_labels():
    with pytest.raises(ValueError, match="argmax"):
        confusion_matrix(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="integer"):
        confusion_matrix(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), 3)


def test_boundary_f1_is_one_for_a_perfect_prediction_and_drops_with_a_shift():
    target = torch.zeros(1, 20, 20, dtype=torch.long)
    target[0, 5:15, 5:15] = 1
    assert boundary_f1(target, target) == 1.0
    shifted = torch.roll(target, shifts=3, dims=2)
    assert boundary_f1(shifted, target, tolerance=1) < 0.7
    assert boundary_f1(shifted, target, tolerance=3) == pytest.approx(1.0)
