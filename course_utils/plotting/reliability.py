"""Reliability diagrams: do a classifier's probabilities mean what they say?

Taught in {ref}`sec-calibration` (chapter 6). A classifier is **calibrated** if, among all the predictions it makes with
confidence about :math:`q`, a fraction of about :math:`q` is right. The reliability diagram
(DeGroot and Fienberg 1983; Guo et al. 2017) sorts predictions into equal-width bins of confidence
:math:`(b/B, (b+1)/B]` and draws, for each bin, the accuracy of its predictions against their mean
confidence; a calibrated classifier lies on the diagonal.

Only the picture is here; the binning is :mod:`course_utils.metrics.calibration`. The number that
summarises it (the expected calibration error) and the fix (temperature scaling) are what lab 6 asks
you to write.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..metrics.calibration import calibration_bins, confidence_and_correct
from .masks import PALETTE


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
    confidence, correct = confidence_and_correct(probs, labels)
    count, mean_conf, accuracy = calibration_bins(confidence, correct, n_bins)
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
