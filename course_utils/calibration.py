"""Reliability diagrams: do a classifier's probabilities mean what they say?

Taught in chapter 6, *Categorical density estimation*, section "Are the pixel probabilities
calibrated?". A classifier is **calibrated** if, among all the predictions it makes with
confidence about :math:`q`, a fraction of about :math:`q` is right. The reliability diagram
(DeGroot and Fienberg 1983; Guo et al. 2017) sorts predictions into equal-width bins of confidence
:math:`(b/B, (b+1)/B]` and draws, for each bin, the accuracy of its predictions against their mean
confidence; a calibrated classifier lies on the diagonal.

Only the picture is here. The number that summarises it (the expected calibration error) and the
fix (temperature scaling) are what lab 6 asks you to write.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .plotting import PALETTE


def _confidence_and_correct(probs, labels) -> tuple[np.ndarray, np.ndarray]:
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


def _bin_statistics(confidence: np.ndarray, correct: np.ndarray, n_bins: int):
    """Per bin ``(b/B, (b+1)/B]``: number of predictions, mean confidence, accuracy (NaN if empty)."""
    idx = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct.astype(np.float64), minlength=n_bins) / count
    return count, mean_conf, accuracy


def reliability_diagram(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, ax=None, title: str | None = None,
                        color: str | None = None, show_counts: bool = True):
    """Draw the reliability diagram of class probabilities ``probs`` against true ``labels``.

    ``probs`` is ``(P, C)`` with labels ``(P,)``, or per-pixel ``(N, C, H, W)`` with labels
    ``(N, H, W)``. Bars show the accuracy of each confidence bin; the hatched part is the gap to the
    bin's mean confidence (above the bar: over-confident, below: under-confident). With
    ``show_counts`` a grey step line on a log axis shows how many predictions fall in each bin.
    Returns the axes.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    confidence, correct = _confidence_and_correct(probs, labels)
    count, mean_conf, accuracy = _bin_statistics(confidence, correct, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    edges = np.linspace(0, 1, n_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / n_bins
    full = count > 0
    ax.bar(centres[full], accuracy[full], width=width, color=color or PALETTE[5], edgecolor="white", label="accuracy")
    ax.bar(centres[full], (mean_conf - accuracy)[full], bottom=accuracy[full], width=width, fill=False,
           hatch="//", edgecolor=PALETTE[6], label="gap to confidence")
    ax.plot([0, 1], [0, 1], ls="--", color="black", lw=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title)
    if show_counts and full.any():
        twin = ax.twinx()
        twin.step(edges, np.r_[count, count[-1]], where="post", color="grey", lw=1, alpha=0.7)
        twin.set_yscale("log")
        twin.set_ylim(0.8, max(2.0, count.max() * 3))
        twin.set_ylabel("predictions per bin", color="grey")
        twin.tick_params(axis="y", colors="grey")
    ax.legend(loc="upper left", fontsize="small", frameon=False)
    return ax
