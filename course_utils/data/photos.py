"""Grey-scale photographs and patches for upsampling and super-resolution, offline.

Taught in {ref}`sec-photographs` (chapter 3), and used by lab 3's super-resolution experiment. The
photographs are the ones scikit-image ships inside its package (``skimage.data``), so nothing is
downloaded. The split is by *photograph*: a held-out photograph never contributes a training
patch, so a super-resolution network is judged on pictures it has never seen.

* :func:`photo` loads one photograph as a float32 grey image in [0, 1] (cached);
* :func:`photos` loads a whole split;
* :func:`photo_patches` cuts ``n`` random square patches from a split, with a seed;
* :func:`downsample` makes the low-resolution input of a super-resolution pair by averaging
  ``factor x factor`` blocks (the half-pixel convention of ``align_corners=False``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

# Every name below loads from files inside the installed scikit-image (checked by the tests).
TRAIN_PHOTOS = (
    "astronaut", "coffee", "rocket", "brick", "grass", "gravel",
    "immunohistochemistry", "moon", "hubble_deep_field",
)
HELD_OUT_PHOTOS = ("camera", "chelsea", "coins")
SPLITS = {"train": TRAIN_PHOTOS, "held_out": HELD_OUT_PHOTOS}


@lru_cache(maxsize=None)
def _load(name: str) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray

    if name not in TRAIN_PHOTOS + HELD_OUT_PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; expected one of {TRAIN_PHOTOS + HELD_OUT_PHOTOS}")
    image = getattr(skimage.data, name)()
    if image.ndim == 3:
        image = rgb2gray(image[..., :3])  # float64 in [0, 1]
    else:
        image = image.astype(np.float64) / 255.0
    image = image.astype(np.float32)
    image.setflags(write=False)
    return image


def photo(name: str) -> torch.Tensor:
    """One bundled photograph as a grey image ``(H, W)``, float32 in [0, 1]."""
    return torch.from_numpy(_load(name).copy())


def photos(split: str) -> dict[str, torch.Tensor]:
    """All photographs of ``split`` ("train" or "held_out"), by name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    return {name: photo(name) for name in SPLITS[split]}


def photo_patches(n: int, size: int, split: str = "train", seed: int = 0, flips: bool = True) -> torch.Tensor:
    """``n`` random ``size x size`` patches of the photographs of ``split``, shape ``(n, 1, size, size)``.

    Every photograph is equally likely to be picked, then a position uniformly inside it; with
    ``flips`` a patch is mirrored left-right with probability 1/2. The same seed gives the same
    patches on every machine.
    """
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 patches of size >= 1, got n={n}, size={size}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
    images = [_load(name) for name in SPLITS[split]]
    smallest = min(min(im.shape) for im in images)
    if size > smallest:
        raise ValueError(f"patch size {size} is larger than the smallest photograph side ({smallest})")
    rng = np.random.default_rng(seed)
    out = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        im = images[rng.integers(len(images))]
        top = rng.integers(0, im.shape[0] - size + 1)
        left = rng.integers(0, im.shape[1] - size + 1)
        patch = im[top:top + size, left:left + size]
        if flips and rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i, 0] = patch
    return torch.from_numpy(out)


def crop_to_multiple(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Crop the last two dimensions of ``image`` down to multiples of ``factor`` (bottom and right)."""
    if image.dim() < 2:
        raise ValueError(f"expected an image with at least 2 dimensions (..., H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    return image[..., : h - h % factor, : w - w % factor]


def downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The low-resolution version of ``images`` ``(N, C, H, W)``: the mean of every ``factor x factor``
    block. ``H`` and ``W`` must be multiples of ``factor`` (see :func:`crop_to_multiple`)."""
    if images.dim() != 4:
        raise ValueError(f"downsample expects images (N, C, H, W), got shape {tuple(images.shape)}")
    if not torch.is_floating_point(images):
        raise TypeError(f"downsample expects floating-point images, got dtype {images.dtype}")
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(
            f"image sides {h}x{w} are not multiples of factor {factor}; crop them with crop_to_multiple first"
        )
    return F.avg_pool2d(images, factor)
