"""The coins photograph and its point annotations: counting on a real image.

Taught in {ref}`sec-counting-coins` (chapter 5). scikit-image ships a photograph of 24 Greek coins
(``skimage.data.coins()``, 303x384 grey pixels, no download). Lab 5 clicks once per coin, trains a
counter from those clicks on one part of the photograph, and counts the coins of the other part.

The clicks are made by ``labs/05_where_labels_come_from/make_coins_points.py`` (classical
segmentation, then a by-eye review that pins the true count, 24) and committed next to the lab as
``coins_points.csv``. :data:`COIN_POINTS` is a copy of that file, kept here so the lab runs where the
lab folder does not travel with the notebook (an autograder, a hosted notebook); it is Python rather
than a data file so that no packaging setting can leave it behind. ``tests/test_coins.py`` checks
that the copy equals the CSV and that the procedure still reproduces it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRUE_COUNT = 24

# (row, col) of one pixel inside each coin, rows of coins top to bottom, each left to right.
COIN_POINTS = (
    (54, 44), (56, 100), (51, 155), (51, 215), (52, 276), (44, 335),
    (124, 45), (126, 102), (127, 154), (124, 205), (119, 271), (125, 336),
    (197, 44), (196, 102), (198, 154), (193, 212), (194, 274), (187, 347),
    (260, 46), (266, 114), (261, 172), (263, 244), (263, 301), (268, 358),
)


def coins_image() -> np.ndarray:
    """The photograph as float32 ``(303, 384)`` with grey levels in [0, 1]."""
    from skimage import data

    return (data.coins() / 255.0).astype(np.float32)


def coin_points() -> np.ndarray:
    """The committed clicks, int64 ``(24, 2)`` as (row, col)."""
    return np.array(COIN_POINTS, dtype=np.int64)


def read_points_csv(path: str | Path) -> np.ndarray:
    """Read a ``row,col`` CSV of point annotations (with a header line) into int64 ``(k, 2)``."""
    pts = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    if pts.size == 0:
        return np.zeros((0, 2), np.int64)
    if pts.shape[1] != 2:
        raise ValueError(f"{path}: expected two columns (row, col), got {pts.shape[1]}")
    return pts


def points_in_window(points: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """The points that fall in the window ``image[rows, cols]``, in the window's coordinates."""
    p = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    r0, r1 = rows.start or 0, rows.stop
    c0, c1 = cols.start or 0, cols.stop
    keep = (p[:, 0] >= r0) & (p[:, 1] >= c0)
    if r1 is not None:
        keep &= p[:, 0] < r1
    if c1 is not None:
        keep &= p[:, 1] < c1
    return p[keep] - np.array([r0, c0])
