"""Segmentation masks with a legend, and grids of scenes with their labels and predictions.

Taught in {ref}`sec-course-data` (chapter 0). Masks use a colour-blind-safe palette
(Okabe and Ito's eight colours, extended with Paul Tol's), background in a neutral grey. The eleven
colours of the digit scenes' classes (background and ten digits) stay apart under simulated protan,
deutan and tritan vision (CIEDE2000 distance at least 10 between any two); where a figure must still
not rely on colour, ``show_mask(..., labels=True)`` writes each class's name on its regions.
"""

from __future__ import annotations

import matplotlib.axes
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.patches import Patch
from scipy import ndimage

from .. import checks

# background grey, then Okabe-Ito, then Paul Tol "muted" colours for classes 8 and up. Class 10 (the
# digit 9 of the digit scenes) is Tol's indigo: his teal (#44aa99), there before, was the bluish green of
# class 3 (digit 2) at a luminance contrast of 1.2, and closer still under tritan and deutan vision.
PALETTE = (
    "#d9d9d9", "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2",
    "#d55e00", "#cc79a7", "#000000", "#882255", "#332288", "#999933",
    "#aa4499", "#44aa99", "#117733",
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


def _class_names(class_names, who: str) -> list[str]:
    if class_names is None or isinstance(class_names, str) or not hasattr(class_names, "__len__"):
        raise TypeError(f"{who} needs class_names, one name per class (for the course's data: scenes.class_names), "
                        f"got {checks.describe(class_names)}")
    if not 1 <= len(class_names) <= len(PALETTE):
        raise ValueError(f"{who} draws 1 to {len(PALETTE)} classes, got {len(class_names)} class names")
    return list(class_names)


def _mask(mask, class_names: list[str], who: str) -> np.ndarray:
    """A mask ``(H, W)`` of class indices in ``[0, len(class_names))``, as a NumPy array."""
    if not isinstance(mask, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{who} expects a mask of shape (H, W) (a tensor or an array), got {checks.describe(mask)}")
    m = checks.numpy(mask)
    floating = m.dtype.kind == "f"
    if m.ndim == 3 and floating:
        raise TypeError(f"{who} expects a mask of class indices (H, W), got {checks.describe(mask)}: scores of one "
                        "image (C, H, W)? take scores.argmax(dim=0) (for a batch (N, C, H, W): scores.argmax(dim=1)[i])")
    if m.ndim != 2:
        cause = {3: "; one mask of a batch (N, H, W) is masks[i]", 1: "; a mask has two dimensions, (H, W)"}.get(m.ndim, "")
        raise ValueError(f"{who} expects a mask of shape (H, W), got {checks.describe(mask)}{cause}")
    if floating or m.dtype.kind not in "iub":
        raise TypeError(f"{who} expects a mask of integer class indices (H, W), got {checks.describe(mask)}; "
                        "threshold or round it and call .long() (scores.argmax(dim=0) for one image's scores)")
    k = len(class_names)
    if m.size and (m.min() < 0 or m.max() >= k):
        raise ValueError(f"{who}: the mask holds labels {m.min()} to {m.max()}, but only {k} class names were given "
                         f"({class_names[:4]}{'...' if k > 4 else ''}); pass one name per class")
    return m.astype(np.int64)


def legend_handles(present, class_names) -> list[Patch]:
    """Legend entries (a patch of the class's colour and its name) for the classes in ``present``."""
    return [Patch(color=PALETTE[c], label=class_names[c]) for c in sorted(int(c) for c in present)]


def _relative_luminance(colour: str) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def label_regions(ax, mask: np.ndarray, class_names: list[str], min_pixels: int = 12, fontsize: float = 9):
    """Write each class's name (not the background's, class 0) on every region of that class in
    ``mask`` (a connected area of at least ``min_pixels`` pixels), at the pixel deepest inside it, in
    black or white, whichever stands out more from the class's colour. Returns the texts."""
    texts = []
    for c in np.unique(mask):
        if c == 0:
            continue
        regions, n = ndimage.label(mask == c)
        colour = PALETTE[int(c)]
        ink = "black" if _relative_luminance(colour) > 0.18 else "white"
        halo = "white" if ink == "black" else "black"
        for r in range(1, n + 1):
            region = regions == r
            if region.sum() < min_pixels:
                continue
            depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
            i, j = np.unravel_index(depth.argmax(), depth.shape)
            text = ax.text(j, i, class_names[int(c)], ha="center", va="center", fontsize=fontsize, color=ink,
                           fontweight="bold", path_effects=[patheffects.withStroke(linewidth=1.5, foreground=halo)])
            texts.append(text)
    return texts


def show_mask(ax, mask, class_names, title: str | None = None, legend: bool = True, alpha: float = 1.0,
              labels: bool = False):
    """Draw an integer mask ``(H, W)`` on the axes ``ax`` with one colour per class and a legend of
    the classes present; with ``labels=True`` also write each class's name on its regions
    (:func:`label_regions`), so that no reader has to tell the classes apart by colour. Raises a
    clear error for anything else."""
    if not isinstance(ax, matplotlib.axes.Axes):
        raise TypeError(f"show_mask(ax, mask, class_names) draws on the axes ax (fig, ax = plt.subplots()), "
                        f"got {checks.describe(ax)} as ax")
    names = _class_names(class_names, "show_mask")
    m = _mask(mask, names, "show_mask")
    ax.imshow(m, cmap=mask_cmap(len(names)), vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest", alpha=alpha)
    ax.set_xticks([])
    ax.set_yticks([])
    if labels:
        label_regions(ax, m, names)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(handles=legend_handles(np.unique(m), names), loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  fontsize="small", frameon=False)
    return ax


def _batch(x, name: str, n: int, image: bool = False):
    """Check that ``x`` is a batch of at least ``n`` images ``(N, C, H, W)``/``(N, H, W)`` or masks ``(N, H, W)``."""
    layout = "(N, 1, H, W) or (N, H, W)" if image else "(N, H, W)"
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"show_scenes expects {name} as a tensor {layout}, got {checks.describe(x)}")
    ok = x.ndim in ((3, 4) if image else (3,))
    if not ok:
        if x.ndim == 2:
            cause = f"; a single one? add the batch dimension: {name}[None]"
        elif not image and x.ndim == 4:
            cause = f"; scores (N, C, H, W)? pass {name}.argmax(dim=1)"
        else:
            cause = ""
        raise ValueError(f"show_scenes expects {name} of shape {layout}, got {checks.describe(x)}{cause}")
    if len(x) < n:
        raise ValueError(f"show_scenes draws {n} scenes but {name} holds {len(x)}")


def show_scenes(images, masks=None, class_names=None, predictions=None, n: int = 4, titles=None):
    """A grid: one column per scene; rows are the image, the true mask and (optionally) a predicted
    mask. One legend, on the right, lists every class drawn in any panel."""
    checks.integer(n, "show_scenes: n", low=1)
    _batch(images, "images", 1, image=True)
    n = min(n, len(images))
    groups = [(name, g) for name, g in (("label", masks), ("prediction", predictions)) if g is not None]
    names = _class_names(class_names, "show_scenes") if groups else None
    drawn = {}
    for name, group in groups:  # check everything before drawing, so a mistake leaves no half-drawn figure
        _batch(group, f"{name}s" if name == "prediction" else "masks", n)
        drawn[name] = [_mask(group[j], names, f"show_scenes ({name} {j})") for j in range(n)]
    if titles is not None and len(titles) < n:
        raise ValueError(f"show_scenes draws {n} scenes but got {len(titles)} titles")
    rows = 1 + len(groups)
    fig, axes = plt.subplots(rows, n, figsize=(2.4 * n + 1.2, 2.4 * rows), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(_as_image(images[j]), cmap="gray")
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
        if titles is not None:
            axes[0, j].set_title(titles[j])
        for r, (name, _) in enumerate(groups, start=1):
            show_mask(axes[r, j], drawn[name][j], names, legend=False)
            if j == 0:
                axes[r, j].set_ylabel(name)
    axes[0, 0].set_ylabel("image")
    fig.tight_layout()
    if groups:
        present = set().union(*(np.unique(m).tolist() for masks_ in drawn.values() for m in masks_))
        fig.subplots_adjust(right=1 - 1.3 / fig.get_figwidth())
        fig.legend(handles=legend_handles(present, names), loc="center right", fontsize="small", frameon=False)
    return fig
