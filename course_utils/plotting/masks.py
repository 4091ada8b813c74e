"""Plots the labs share: segmentation masks with a legend, image grids, training curves.

Taught in {ref}`sec-course-data` (chapter 0). Masks use a colour-blind-safe palette
(Okabe and Ito's eight colours, extended with Paul Tol's), background in a neutral grey.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from .. import checks

# background grey, then Okabe-Ito, then Paul Tol "muted" colours for classes 8 and up
PALETTE = (
    "#d9d9d9", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2",
    "#d55e00", "#cc79a7", "#000000", "#882255", "#44aa99", "#999933",
    "#aa4499", "#332288", "#117733",
)


def mask_cmap(num_classes: int) -> ListedColormap:
    """A colour map with one colour-blind-safe colour per class (class 0 grey)."""
    if not 1 <= num_classes <= len(PALETTE):
        raise ValueError(f"mask_cmap supports 1 to {len(PALETTE)} classes, got {num_classes}")
    return ListedColormap(PALETTE[:num_classes])


def _as_image(x) -> np.ndarray:
    x = checks.numpy(x)
    if x.ndim == 3 and x.shape[0] in (1, 3):  # channels first, as torch stores them
        x = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)
    return x


def show_mask(ax, mask, class_names, title: str | None = None, legend: bool = True, alpha: float = 1.0):
    """Draw an integer mask ``(H, W)`` on ``ax`` with one colour per class and a legend of the
    classes present. Raises a clear error for a mask that is not 2-D integers."""
    m = checks.numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"show_mask expects a mask of shape (H, W), got shape {m.shape}")
    if not np.issubdtype(m.dtype, np.integer):
        raise TypeError(f"show_mask expects integer class labels, got dtype {m.dtype}; use .argmax(dim=0) on scores")
    k = len(class_names)
    if m.size and (m.min() < 0 or m.max() >= k):
        raise ValueError(f"mask holds labels in [{m.min()}, {m.max()}] but only {k} class names were given")
    ax.imshow(m, cmap=mask_cmap(k), vmin=-0.5, vmax=k - 0.5, interpolation="nearest", alpha=alpha)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend:
        present = np.unique(m)
        handles = [Patch(color=PALETTE[c], label=class_names[c]) for c in present]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    return ax


def show_scenes(images, masks=None, class_names=None, predictions=None, n: int = 4, titles=None):
    """A grid: one column per scene; rows are the image, the true mask and (optionally) a predicted mask."""
    n = min(n, len(images))
    rows = 1 + (masks is not None) + (predictions is not None)
    fig, axes = plt.subplots(rows, n, figsize=(2.4 * n + 1.2, 2.4 * rows), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(_as_image(images[j]), cmap="gray")
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
        if titles is not None:
            axes[0, j].set_title(titles[j])
        r = 1
        for name, group in (("label", masks), ("prediction", predictions)):
            if group is None:
                continue
            show_mask(axes[r, j], group[j], class_names, legend=(j == n - 1))
            if j == 0:
                axes[r, j].set_ylabel(name)
            r += 1
    axes[0, 0].set_ylabel("image")
    fig.tight_layout()
    return fig
