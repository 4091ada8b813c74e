"""How close an upsampled image is to the true one: PSNR, and a measure of checkerboard artifacts.

Taught in {ref}`sec-photographs` and {ref}`sec-checkerboard` (chapter 3); lab 3 scores its super-resolution networks
with them.
"""

from __future__ import annotations

import math

import torch

from .. import checks


def _check_pair(prediction: torch.Tensor, target: torch.Tensor, name: str) -> None:
    checks.pair(prediction, target, name, "float", ("prediction", "target"))
    if prediction.dim() < 2:
        raise ValueError(f"{name} expects images (..., H, W), got {checks.describe(prediction)}")


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, border: int = 0,
         clamp: bool = True) -> float:
    """Peak signal-to-noise ratio in decibels, :math:`10 \\log_{10}(R^2 / \\mathrm{MSE})`.

    ``prediction`` and ``target`` have the same shape ``(..., H, W)``; the mean squared error is
    taken over all their entries, after dropping ``border`` pixels on every side (super-resolution
    papers do this because no method can know what lies beyond the image edge). With ``clamp``
    the prediction is first clipped to ``[0, data_range]``, as saving it as an image would.
    """
    _check_pair(prediction, target, "psnr")
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    h, w = prediction.shape[-2:]
    if 2 * border >= min(h, w):
        raise ValueError(f"a border of {border} pixels leaves nothing of a {h}x{w} image")
    if border:
        prediction = prediction[..., border:h - border, border:w - border]
        target = target[..., border:h - border, border:w - border]
    prediction = prediction.detach().double()
    if clamp:
        prediction = prediction.clamp(0, data_range)
    mse = float(((prediction - target.detach().double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def phase_means(image: torch.Tensor, factor: int) -> torch.Tensor:
    """The mean of ``image`` ``(..., H, W)`` over each of the ``factor x factor`` sub-pixel phases:
    entry ``(a, b)`` averages every pixel ``(i, j)`` with ``i % factor == a`` and ``j % factor == b``.

    An upsampler with checkerboard artifacts treats the phases differently, so its response to a
    flat image has unequal phase means; a clean one has equal means.
    """
    if image.dim() < 2:
        raise ValueError(f"phase_means expects an image (..., H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image sides {h}x{w} must be multiples of factor {factor}")
    x = image.detach().double().reshape(-1, h // factor, factor, w // factor, factor)
    return x.mean(dim=(0, 1, 3))


def checkerboard_score(image: torch.Tensor, factor: int, border: int | None = None) -> float:
    """How much the ``factor x factor`` phases of ``image`` differ: the standard deviation of the
    phase means (see :func:`phase_means`) divided by the mean absolute value of the image, after
    dropping ``border`` pixels (default ``factor``) on every side. About 0 for a flat response;
    it grows with the strength of a periodic pattern of period ``factor``."""
    border = factor if border is None else border
    h, w = image.shape[-2:]
    inner = image[..., border:h - border, border:w - border]
    hi, wi = inner.shape[-2:]
    if hi < factor or wi < factor:
        raise ValueError(f"a {h}x{w} image is too small to measure phases of period {factor} inside a border of {border}")
    inner = inner[..., : hi - hi % factor, : wi - wi % factor]
    means = phase_means(inner, factor)
    scale = inner.detach().double().abs().mean().clamp_min(1e-12)
    return float(means.std(unbiased=False) / scale)
