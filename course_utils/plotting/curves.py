"""Training curves: loss (or any metric) per epoch, one line per run.

Taught in {ref}`sec-training-loop` (chapter 0).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .masks import PALETTE


def plot_curves(history: dict, ax=None, title: str | None = None, logy: bool = False):
    """Plot each list in ``history`` (e.g. ``{"train loss": [...], "test loss": [...]}``) against epochs."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, values in history.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False)
    return ax
