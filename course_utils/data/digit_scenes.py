"""Digit scenes: a pixel-labeling data set made offline from real handwriting.

Taught in {ref}`sec-digit-scenes` (chapter 2), and used by chapters 2 to 6.

Each scene is a grey canvas holding a few of scikit-learn's bundled handwritten digits (real
handwriting: 1,797 scans of 8x8 pixels), scaled up and placed without overlap, on a background with
a smooth illumination gradient, stroke-like clutter and sensor noise. For every scene we know:

* ``labels``: the class of every pixel, 0 for background and ``d + 1`` for digit ``d``;
* ``instances``: which object every pixel belongs to (0 for background, 1..k for the k digits);
* ``centres``: the centre of mass of every object and ``points``: the object pixel nearest to it,
  the "one click per object" of chapter 5.

The train/test split is by *source digit*: the 1,797 scans are split once, with a fixed seed, and a
test scene only ever contains scans that no training scene contains.
Everything is a function of the seed, so every machine gets the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage

NUM_CLASSES = 11
CLASS_NAMES = ("background",) + tuple(str(d) for d in range(10))
SPLIT_SEED = 20180101
TEST_FRACTION = 0.3
INK_THRESHOLD = 0.35


@lru_cache(maxsize=1)
def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # 8x8, ink in [0, 1]
    return images, bunch.target.astype(np.int64)


def digit_split(split: str) -> np.ndarray:
    """Indices of the scikit-learn digits that belong to ``split`` ("train" or "test").

    The split is fixed once for the whole course, so no test digit is ever seen in training.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, _ = _bundled_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_test = int(round(TEST_FRACTION * len(images)))
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def handwritten_glyphs(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The real handwritten digits of one split, as (glyphs ``(n, 8, 8)`` in [0, 1], classes ``(n,)``)."""
    images, target = _bundled_digits()
    idx = digit_split(split)
    return images[idx], target[idx]


@dataclass
class DigitScenes(torch.utils.data.Dataset):
    """A batch of scenes. Indexing gives ``(image, label)`` pairs, so it plugs into a DataLoader.

    Attributes (``N`` scenes of ``H x W`` pixels):
        images: float32 tensor ``(N, 1, H, W)``, roughly zero mean and unit variance.
        labels: int64 tensor ``(N, H, W)``: 0 background, ``d + 1`` for digit ``d``
            (or 0/1 when ``binary``).
        instances: int64 tensor ``(N, H, W)``: 0 background, 1..k the objects of that scene.
        centres: one float array ``(k, 2)`` of (row, col) centres of mass per scene.
        points: one int array ``(k, 2)`` per scene: the object pixel nearest to its centre.
        digits: one int array ``(k,)`` per scene: the digit class of each object.
        sources: one int array ``(k,)`` per scene: which glyph of the bank each object is.
    """

    images: torch.Tensor
    labels: torch.Tensor
    instances: torch.Tensor
    centres: list = field(repr=False)
    points: list = field(repr=False)
    digits: list = field(repr=False)
    sources: list = field(repr=False)
    binary: bool = False

    @property
    def num_classes(self) -> int:
        return 2 if self.binary else NUM_CLASSES

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("background", "digit") if self.binary else CLASS_NAMES

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def counts(self) -> torch.Tensor:
        """Number of objects in each scene."""
        return torch.tensor([len(d) for d in self.digits])

    def class_frequencies(self) -> torch.Tensor:
        """Fraction of all pixels that belong to each class."""
        hist = torch.bincount(self.labels.flatten(), minlength=self.num_classes).double()
        return hist / hist.sum()


def _place(occupied: np.ndarray, h: int, w: int, rng: np.random.Generator, margin: int, tries: int = 60):
    H, W = occupied.shape
    if h > H or w > W:
        return None
    for _ in range(tries):
        r = int(rng.integers(0, H - h + 1))
        c = int(rng.integers(0, W - w + 1))
        r0, r1 = max(0, r - margin), min(H, r + h + margin)
        c0, c1 = max(0, c - margin), min(W, c + w + margin)
        if not occupied[r0:r1, c0:c1].any():
            return r, c
    return None


def _clutter(canvas: np.ndarray, rng: np.random.Generator, amount: int) -> None:
    """Draw stroke-like distractors (short arcs and dots) that are *not* digits."""
    H, W = canvas.shape
    yy, xx = np.mgrid[0:H, 0:W]
    for _ in range(amount):
        if rng.random() < 0.6:  # a short straight stroke
            r0, c0 = rng.uniform(0, H), rng.uniform(0, W)
            angle, length = rng.uniform(0, np.pi), rng.uniform(3, 8)
            t = np.linspace(0, 1, 12)[:, None]
            pts = np.stack([r0 + t[:, 0] * length * np.sin(angle), c0 + t[:, 0] * length * np.cos(angle)], 1)
            d2 = ((yy[None] - pts[:, 0, None, None]) ** 2 + (xx[None] - pts[:, 1, None, None]) ** 2).min(0)
            canvas += rng.uniform(0.25, 0.6) * np.exp(-d2 / 1.2)
        else:  # a blob
            r0, c0, s = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(0.8, 2.0)
            canvas += rng.uniform(0.2, 0.5) * np.exp(-((yy - r0) ** 2 + (xx - c0) ** 2) / (2 * s * s))


def _check_count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n (the number of scenes) must be an integer, got {type(n).__name__} {n!r}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return int(n)


def _check_size(size) -> tuple[int, int]:
    """``size`` is an int (square scenes) or a pair ``(H, W)`` of positive ints."""
    pair = (size, size) if isinstance(size, (int, np.integer)) and not isinstance(size, bool) else size
    try:
        H, W = pair
    except (TypeError, ValueError):
        raise ValueError(f"size must be an int or a pair (H, W) of ints, got {size!r}") from None
    for side in (H, W):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise ValueError(f"size must be an int or a pair (H, W) of positive ints, got {size!r}")
    return int(H), int(W)


def _check_range(pair, name: str, integer: bool, lowest: float) -> tuple:
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair, got {pair!r}") from None
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if any(isinstance(v, bool) or not isinstance(v, kinds) for v in (lo, hi)):
        raise ValueError(f"{name} must be a (min, max) pair of {'ints' if integer else 'numbers'}, got {pair!r}")
    if not (lowest <= lo <= hi):
        raise ValueError(f"{name} must be a (min, max) pair with {lowest} <= min <= max, got {pair!r}")
    return lo, hi


def _check_glyphs(glyphs, classes) -> tuple[np.ndarray, np.ndarray]:
    glyphs = np.asarray(glyphs, dtype=np.float32)
    classes = np.asarray(classes)
    if glyphs.ndim != 3:
        raise ValueError(f"glyphs must have shape (m, h, w), got {glyphs.shape}")
    if glyphs.shape[0] == 0:
        raise ValueError("glyphs is empty: scenes need at least one glyph to draw from")
    if classes.shape != (glyphs.shape[0],):
        raise ValueError(f"classes must have shape ({glyphs.shape[0]},), got {classes.shape}")
    if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() > 9:
        raise ValueError(f"classes must be digit classes, integers in 0..9; got dtype {classes.dtype} "
                         f"with values in [{classes.min()}, {classes.max()}]")
    return glyphs, classes


def _check_options(objects, scale, clutter, noise) -> tuple[tuple, tuple]:
    objects = _check_range(objects, "objects", integer=True, lowest=0)
    scale = _check_range(scale, "scale", integer=False, lowest=0)
    if scale[0] <= 0:
        raise ValueError(f"scale must be a (min, max) pair of positive factors, got {scale}")
    if not (np.isfinite(clutter) and clutter >= 0):
        raise ValueError(f"clutter is the mean number of distractor strokes and must be >= 0, got {clutter}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}")
    return objects, scale


def _draw_scene(rng, glyphs, classes, labels, instances, objects, scale, clutter, noise, binary):
    """One scene: fill ``labels`` and ``instances`` (``(H, W)`` views) and return the image and,
    per digit placed, its centre, its point (the ink pixel nearest the centre), class and source."""
    H, W = labels.shape
    yy, xx = np.mgrid[0:H, 0:W]
    # background: an illumination gradient, so "bright" alone does not mean "digit"
    gy, gx = rng.normal(0, 0.25, 2)
    canvas = 0.15 + gy * (yy / H - 0.5) + gx * (xx / W - 0.5)
    _clutter(canvas, rng, int(rng.poisson(clutter)))
    occupied = np.zeros((H, W), bool)
    centres, points, digits, sources = [], [], [], []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        g = int(rng.integers(len(glyphs)))
        factor = rng.uniform(*scale)
        ink = np.clip(ndimage.zoom(glyphs[g], factor, order=1), 0, 1)
        where = _place(occupied, *ink.shape, rng, margin=1)
        if where is None:
            continue
        r, c = where
        h, w = ink.shape
        mask = ink > INK_THRESHOLD
        if mask.sum() < 4:
            continue
        contrast = rng.uniform(0.55, 0.95)
        region = canvas[r:r + h, c:c + w]
        canvas[r:r + h, c:c + w] = region * (1 - ink) + contrast * ink
        occupied[r:r + h, c:c + w] |= mask
        labels[r:r + h, c:c + w][mask] = 1 if binary else int(classes[g]) + 1
        instances[r:r + h, c:c + w][mask] = len(digits) + 1
        rows, cols = np.nonzero(mask)
        centre = np.array([rows.mean() + r, cols.mean() + c])
        nearest = np.argmin((rows + r - centre[0]) ** 2 + (cols + c - centre[1]) ** 2)
        centres.append(centre)
        points.append((rows[nearest] + r, cols[nearest] + c))
        digits.append(int(classes[g]))
        sources.append(g)
    canvas += rng.normal(0, noise, canvas.shape)
    return canvas, centres, points, digits, sources


def compose_scenes(
    glyphs: np.ndarray,
    classes: np.ndarray,
    n: int,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    objects: tuple[int, int] = (1, 4),
    scale: tuple[float, float] = (2.0, 3.5),
    clutter: int = 4,
    noise: float = 0.08,
    binary: bool = False,
    progress: bool = False,
) -> DigitScenes:
    """Compose ``n`` scenes from a bank of glyphs (any source: real digits, or rendered ones in ch. 5).

    ``glyphs`` is ``(m, h, w)`` with ink in [0, 1]; ``classes`` ``(m,)`` their digit classes.
    ``objects`` is the (min, max) number of digits per scene, ``scale`` the range of the upscaling
    factor, ``clutter`` the mean number of distractor strokes, ``noise`` the noise level.
    """
    glyphs, classes = _check_glyphs(glyphs, classes)
    n = _check_count(n)
    H, W = _check_size(size)
    objects, scale = _check_options(objects, scale, clutter, noise)
    gh, gw = (int(round(side * scale[0])) for side in glyphs.shape[1:])
    if objects[1] > 0 and (gh > H or gw > W):
        raise ValueError(f"scenes of {H}x{W} pixels cannot hold a digit: the glyphs are {glyphs.shape[1]}x{glyphs.shape[2]} "
                         f"pixels and the scale at least {scale[0]:g}, so the smallest digit is {gh}x{gw}; make the "
                         "scenes larger or the scale smaller")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, H, W), np.float32)
    labels = np.zeros((n, H, W), np.int64)
    instances = np.zeros((n, H, W), np.int64)
    centres, points, digits, sources = [], [], [], []
    iterator = range(n)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="composing scenes")
    for i in iterator:
        images[i], sc_c, sc_p, sc_d, sc_s = _draw_scene(rng, glyphs, classes, labels[i], instances[i], objects, scale,
                                                        clutter, noise, binary)
        centres.append(np.array(sc_c, np.float64).reshape(-1, 2))
        points.append(np.array(sc_p, np.int64).reshape(-1, 2))
        digits.append(np.array(sc_d, np.int64))
        sources.append(np.array(sc_s, np.int64))
    images = (images - 0.25) / 0.25  # roughly zero mean, unit variance
    return DigitScenes(
        images=torch.from_numpy(images).unsqueeze(1),
        labels=torch.from_numpy(labels),
        instances=torch.from_numpy(instances),
        centres=centres,
        points=points,
        digits=digits,
        sources=sources,
        binary=binary,
    )


def digit_scenes(n: int, size: int | tuple[int, int] = 64, split: str = "train", seed: int = 0, **kwargs) -> DigitScenes:
    """``n`` scenes of real handwritten digits from one split ("train" or "test").

    The same ``(n, size, split, seed)`` gives the same arrays on every machine. Test scenes use
    only test digits; pass a different ``seed`` for a validation set drawn from the same digits.
    Keyword arguments go to :func:`compose_scenes` (``objects``, ``scale``, ``clutter``,
    ``noise``, ``binary``, ``progress``).
    """
    n = _check_count(n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    glyphs, classes = handwritten_glyphs(split)
    # train and test use different streams even with the same seed
    stream = seed * 2 + (1 if split == "test" else 0)
    scenes = compose_scenes(glyphs, classes, n, size=size, seed=stream, **kwargs)
    # keep the sources as indices into the full scikit-learn bank, for leak checks
    index = digit_split(split)
    scenes.sources = [index[s] for s in scenes.sources]
    return scenes
