"""Blobs: connected components of a predicted mask, for counting objects by localization.

Taught in {ref}`sec-counting` (chapter 5). A network trained with one point per
object predicts a foreground mask; its connected components ("blobs") are the objects it found, so
the predicted count is the number of blobs. Training needs to know, for every blob, how many of the
annotated points it holds: none (a false positive), one (right), or several (two objects merged,
to be split). These helpers answer those questions; the loss terms built on them are written in lab 5.

Conventions: masks are ``(H, W)`` (or ``(N, H, W)`` for :func:`count_blobs`) booleans or integers
(nonzero = foreground), numpy arrays or torch tensors; points are integer ``(k, 2)`` arrays of
``(row, col)``. Blobs are 8-connected (two pixels touching at a corner belong to the same blob),
as in scikit-image's ``label`` by default.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .. import checks

EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity structuring element
FOUR = ndimage.generate_binary_structure(2, 1)


def _as_points(points, shape: tuple[int, int], name: str) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    p = np.asarray(points)
    if p.size == 0:
        return np.zeros((0, 2), np.int64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{name} expects points of shape (k, 2) as (row, col), got shape {p.shape}")
    if p.dtype.kind == "f":
        if not np.all(p == np.round(p)):
            raise TypeError(f"{name} expects integer pixel coordinates, got non-integer floats")
    p = p.astype(np.int64)
    H, W = shape
    if p[:, 0].min() < 0 or p[:, 0].max() >= H or p[:, 1].min() < 0 or p[:, 1].max() >= W:
        raise ValueError(f"{name}: points must lie inside the {H}x{W} image, got rows "
                         f"[{p[:, 0].min()}, {p[:, 0].max()}] and cols [{p[:, 1].min()}, {p[:, 1].max()}]")
    return p


def label_blobs(mask, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of one mask ``(H, W)``: ``(blob_map, n)`` with ``blob_map`` an int64
    array holding 0 on the background and ``1..n`` on the ``n`` blobs (``scipy.ndimage.label``)."""
    m = checks.numpy_mask(mask, "label_blobs")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    blob_map, n = ndimage.label(m, structure=EIGHT if connectivity == 8 else FOUR)
    return blob_map.astype(np.int64), int(n)


def count_blobs(masks, connectivity: int = 8) -> torch.Tensor:
    """Number of blobs in each mask of a batch ``(N, H, W)``: the predicted counts, int64 ``(N,)``."""
    m = checks.numpy_mask(masks, "count_blobs", ndim=3)
    return torch.tensor([label_blobs(x, connectivity)[1] for x in m], dtype=torch.int64)


def points_per_blob(blob_map: np.ndarray, n: int, points) -> np.ndarray:
    """How many of ``points`` fall in each blob: int64 ``(n + 1,)``, entry 0 counting the points
    that fall on the background, entry ``b`` those in blob ``b``."""
    blob_map = np.asarray(blob_map)
    if blob_map.ndim != 2:
        raise ValueError(f"points_per_blob expects a blob map of shape (H, W), got shape {blob_map.shape}")
    p = _as_points(points, blob_map.shape, "points_per_blob")
    if blob_map.size and (blob_map.min() < 0 or blob_map.max() > n):
        raise ValueError(f"blob map holds ids in [{blob_map.min()}, {blob_map.max()}] but n = {n}")
    return np.bincount(blob_map[p[:, 0], p[:, 1]], minlength=n + 1).astype(np.int64)


def split_boundaries(blob, points, elevation=None) -> np.ndarray:
    """Pixels that separate the objects of one blob holding several points.

    The blob's pixels are shared out among its points by a marker-based watershed
    (``skimage.segmentation.watershed``, one marker per point) on ``elevation`` (for example the
    predicted background probability, as in Laradji et al. 2018; by default a flat image, which
    gives each pixel to the point it is nearest to *inside* the blob). The returned boolean
    ``(H, W)`` mask holds the blob pixels that have a 4-neighbour in the blob given to another
    point: the cut that would separate the objects. With fewer than two distinct points it is empty.
    """
    from skimage.segmentation import watershed

    b = checks.numpy_mask(blob, "split_boundaries")
    p = _as_points(points, b.shape, "split_boundaries")
    if len(p) and not b[p[:, 0], p[:, 1]].all():
        raise ValueError("split_boundaries: every point must lie inside the blob")
    p = np.unique(p, axis=0)
    out = np.zeros(b.shape, bool)
    if len(p) < 2:
        return out
    markers = np.zeros(b.shape, np.int64)
    markers[p[:, 0], p[:, 1]] = np.arange(1, len(p) + 1)
    if elevation is None:
        surface = np.zeros(b.shape, np.float64)
    else:
        if isinstance(elevation, torch.Tensor):
            elevation = elevation.detach().cpu().numpy()
        surface = np.asarray(elevation, dtype=np.float64)
        if surface.shape != b.shape:
            raise ValueError(f"elevation must have the blob's shape {b.shape}, got {surface.shape}")
    regions = watershed(surface, markers, mask=b)
    # a pixel is on the cut if a 4-neighbour inside the blob belongs to another region
    cut_h = (regions[:, :-1] != regions[:, 1:]) & b[:, :-1] & b[:, 1:]  # horizontal neighbour pairs
    cut_v = (regions[:-1, :] != regions[1:, :]) & b[:-1, :] & b[1:, :]  # vertical neighbour pairs
    out[:, :-1] |= cut_h
    out[:, 1:] |= cut_h
    out[:-1, :] |= cut_v
    out[1:, :] |= cut_v
    return out & b
