"""Calibration: how a classifier's confidence compares with how often it is right, bin by bin.

Taught in {ref}`sec-calibration` (chapter 6). Each prediction has a confidence (its top-class
probability) and is right or wrong; the predictions are sorted into equal-width confidence bins
:math:`(b/B, (b+1)/B]`, and each bin's count, mean confidence and accuracy are what the reliability
diagram (:func:`course_utils.plotting.reliability_diagram`) draws. The expected calibration error
that summarises those bins is Lab 6's graded answer; its by-hand rule forbids this module there.
"""

from __future__ import annotations

import numpy as np
import torch


def confidence_and_correct(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Top-class probability and whether the top class is right, one entry per prediction."""
    if not isinstance(probs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(f"expected torch tensors, got {type(probs).__name__} and {type(labels).__name__}")
    if not probs.dtype.is_floating_point:
        raise TypeError(f"probs must be floating point probabilities, got dtype {probs.dtype}")
    if labels.dtype.is_floating_point:
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if probs.dim() == 4:  # (N, C, H, W) score maps: one prediction per pixel
        expected = (probs.shape[0], *probs.shape[2:])
        if tuple(labels.shape) != expected:
            raise ValueError(f"probs of shape {tuple(probs.shape)} need labels of shape {expected}, got {tuple(labels.shape)}")
        probs = probs.movedim(1, -1).reshape(-1, probs.shape[1])
        labels = labels.reshape(-1)
    elif probs.dim() == 2:
        if tuple(labels.shape) != (probs.shape[0],):
            raise ValueError(f"probs of shape {tuple(probs.shape)} need labels of shape ({probs.shape[0]},), got {tuple(labels.shape)}")
    else:
        raise ValueError(f"probs must have shape (P, C) or (N, C, H, W), got {tuple(probs.shape)}")
    if probs.numel() and (probs.min() < 0 or probs.max() > 1 + 1e-6):
        raise ValueError("probs must lie in [0, 1]: pass probabilities (scores.softmax(dim=1)), not scores")
    conf, pred = probs.detach().max(dim=1)
    return conf.double().cpu().numpy(), (pred == labels.to(pred.device)).cpu().numpy()


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int):
    """Per bin ``(b/B, (b+1)/B]``: number of predictions, mean confidence, accuracy (NaN if empty)."""
    idx = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins) / count
    return count, mean_conf, accuracy
