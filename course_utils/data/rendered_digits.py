"""Rendered digits: a simulator of handwriting, for the simulation-to-real experiments.

Taught in {ref}`sec-simulator` (chapter 5). A simulator gives labels for free because it
knows what it drew; the price is that its images are not quite real ones (the *domain gap*).

Each digit class is a few pen strokes (polylines and elliptic arcs) on a unit box. To draw one
sample we jitter the control points, apply a random affine map (rotation, shear, scale, slant),
draw the strokes with a random pen radius on a 32x32 binary bitmap, and then imitate the sensor of
the real data: scikit-learn's digits (the UCI "optdigits" set) were made by counting the ink pixels
of 32x32 bitmaps in non-overlapping 4x4 blocks, so we do the same and divide by 16. The result has
the format of :func:`course_utils.data.handwritten_glyphs` (``(n, 8, 8)``, ink in [0, 1]), so
:func:`course_utils.data.compose_scenes` builds simulated scenes from it with exact labels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BITMAP = 32  # side of the pen bitmap, as in the UCI digits
BLOCK = 4  # 4x4 blocks of ink pixels make one glyph pixel
GLYPH = BITMAP // BLOCK
SUPERSAMPLE = 4  # the pen is drawn on a 4x finer grid


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> np.ndarray:
    """Points (x, y) of an elliptic arc from angle ``a0`` to ``a1`` (degrees; y points down)."""
    t = np.deg2rad(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def _line(*xy: float) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


# Pen strokes of each class in a unit box: x to the right, y down. Several are a polyline joined to
# an arc; the templates are deliberately plain (a font-like hand) so the gap to real handwriting shows.
STROKES: dict[int, list[np.ndarray]] = {
    0: [_arc(0.5, 0.5, 0.32, 0.46, 0, 360, 40)],
    1: [_line(0.30, 0.22, 0.55, 0.04, 0.55, 0.96)],
    2: [np.concatenate([_arc(0.5, 0.30, 0.32, 0.26, -170, 25), _line(0.12, 0.96, 0.90, 0.96)])],
    3: [_arc(0.48, 0.27, 0.30, 0.23, -160, 90), _arc(0.48, 0.73, 0.34, 0.23, -90, 160)],
    4: [_line(0.62, 0.04, 0.10, 0.66, 0.92, 0.66), _line(0.66, 0.30, 0.66, 0.96)],
    5: [np.concatenate([_line(0.86, 0.04, 0.26, 0.04, 0.20, 0.46), _arc(0.48, 0.68, 0.34, 0.28, -125, 150)])],
    6: [np.concatenate([_line(0.74, 0.04, 0.30, 0.42), _arc(0.50, 0.70, 0.30, 0.26, 200, 560, 36)])],
    7: [_line(0.10, 0.04, 0.90, 0.04, 0.42, 0.96)],
    8: [_arc(0.5, 0.27, 0.26, 0.23, 0, 360, 32), _arc(0.5, 0.73, 0.32, 0.23, 0, 360, 32)],
    9: [_arc(0.50, 0.30, 0.30, 0.26, 0, 360, 32), _line(0.80, 0.32, 0.66, 0.96)],
}


def _stroke_distance(polylines: list[np.ndarray], side: int, fine: int = SUPERSAMPLE) -> np.ndarray:
    """Distance (in pixels) from every pixel centre of a ``side x side`` bitmap to the nearest pen
    stroke, computed on a ``fine``-times finer grid: the strokes are rasterized there with
    ``skimage.draw.line`` and a Euclidean distance transform does the rest (error well below half a
    pixel; the tests check it against the exact distance to the segments)."""
    from skimage.draw import line

    n = side * fine + fine
    canvas = np.ones((n, n), bool)  # True = no ink; the distance transform measures to False pixels
    for poly in polylines:
        q = np.clip(np.rint(poly * fine + fine // 2), 0, n - 1).astype(int)  # (x, y) on the fine grid
        for (x0, y0), (x1, y1) in zip(q[:-1], q[1:]):
            rr, cc = line(y0, x0, y1, x1)
            canvas[rr, cc] = False
    dist = ndimage.distance_transform_edt(canvas) / fine
    centres = np.arange(side) * fine + fine // 2  # fine-grid index of each pixel centre
    return dist[np.ix_(centres, centres)]


def render_bitmap(digit: int, rng: np.random.Generator, jitter: float = 0.035, thickness: tuple[float, float] = (1.3, 2.6)) -> np.ndarray:
    """One 32x32 boolean bitmap of ``digit`` drawn by the random pen described in the module docstring."""
    if digit not in STROKES:
        raise ValueError(f"digit must be an integer in 0..9, got {digit!r}")
    strokes = [s + rng.normal(0, jitter, s.shape) for s in STROKES[digit]]
    # a random affine map of the unit box: rotation, slant (shear), and anisotropic scale
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.35, 0.15)  # handwriting slants more to the right than to the left
    sx, sy = rng.uniform(0.55, 1.0), rng.uniform(0.85, 1.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    A = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    pts = [(s - 0.5) @ A.T for s in strokes]
    # fit the drawing into the bitmap the way the UCI digits are size-normalized: full height,
    # keep the aspect ratio, centre it
    allp = np.concatenate(pts)
    lo, hi = allp.min(0), allp.max(0)
    radius = rng.uniform(*thickness)
    room = BITMAP - 2 * radius - 1
    scale = room / max(hi[1] - lo[1], (hi[0] - lo[0]) * 1.0, 1e-6)
    centre = (lo + hi) / 2
    pts = [(p - centre) * scale + (BITMAP - 1) / 2 + rng.normal(0, 0.6, 2) for p in pts]
    return _stroke_distance(pts, BITMAP) <= radius


def bitmaps_to_glyphs(bitmaps: np.ndarray) -> np.ndarray:
    """The UCI sensor: count the ink pixels of each 4x4 block of ``(n, 32, 32)`` bitmaps, divide by 16.

    Returns ``(n, 8, 8)`` float32 glyphs in [0, 1], with 17 grey levels like the real digits.
    """
    b = np.asarray(bitmaps)
    if b.ndim != 3 or b.shape[1:] != (BITMAP, BITMAP):
        raise ValueError(f"bitmaps must have shape (n, {BITMAP}, {BITMAP}), got {b.shape}")
    n = b.shape[0]
    blocks = b.astype(np.float32).reshape(n, GLYPH, BLOCK, GLYPH, BLOCK)
    return blocks.sum((2, 4)) / float(BLOCK * BLOCK)


def rendered_glyphs(n: int, seed: int = 0, classes=None, **pen) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rendered digits as (glyphs ``(n, 8, 8)`` float32 in [0, 1], classes ``(n,)`` int64).

    Classes cycle through 0..9 (or through ``classes`` if given) so every class is equally common.
    The same ``(n, seed)`` gives the same arrays on every machine. ``pen`` goes to
    :func:`render_bitmap` (``jitter``, ``thickness``).
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    pool = np.arange(10) if classes is None else np.asarray(classes, dtype=np.int64)
    if pool.size == 0 or pool.min() < 0 or pool.max() > 9:
        raise ValueError(f"classes must be digits in 0..9, got {pool}")
    labels = pool[np.arange(n) % len(pool)].astype(np.int64)
    bitmaps = np.zeros((n, BITMAP, BITMAP), bool)
    for i, d in enumerate(labels):
        bitmaps[i] = render_bitmap(int(d), rng, **pen)
    return bitmaps_to_glyphs(bitmaps), labels


def rendered_scenes(n: int, size: int | tuple[int, int] = 64, seed: int = 0, bank: int = 1000, **kwargs):
    """``n`` simulated scenes: a bank of ``bank`` rendered glyphs placed by
    :func:`course_utils.data.compose_scenes` (same canvas, clutter and noise as the real scenes, so
    the only difference from :func:`course_utils.data.digit_scenes` is the handwriting).
    Keyword arguments go to ``compose_scenes``."""
    from .digit_scenes import compose_scenes

    glyphs, classes = rendered_glyphs(bank, seed=10_007 + seed)
    return compose_scenes(glyphs, classes, n, size=size, seed=20_011 + seed, **kwargs)
