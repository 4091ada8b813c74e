"""Small fully-convolutional networks that several labs train.

Taught in {ref}`sec-fcn` (chapter 2) and {ref}`sec-bilinear-init` (chapter 3).

:func:`bilinear_kernel` is the answer to lab 3's question 9, which therefore forbids it (a by-hand
rule in its ``grading.yml``); lab 4 and the later labs use it to initialize their upsampling layers. Chapters 4 to 6 reuse :class:`SmallFCN` as
their baseline pixel labeler.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import checks


def bilinear_kernel(size: int, channels: int = 1, dtype=torch.float32) -> torch.Tensor:
    """Weights ``(channels, channels, size, size)`` that make ``nn.ConvTranspose2d`` with stride
    ``s = (size + 1) // 2`` (and ``size = 2s`` or ``2s - 1``) perform bilinear interpolation, one
    channel at a time: :math:`w(i, j) = (1 - |i - c| / f)(1 - |j - c| / f)` with :math:`f = s` and
    centre :math:`c`, as in the FCN paper's upsampling layers."""
    size = checks.integer(size, "bilinear_kernel: size", low=1)
    channels = checks.integer(channels, "bilinear_kernel: channels", low=1)
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - centre).abs() / factor
    kernel = (filt[:, None] * filt[None, :]).to(dtype)
    weight = torch.zeros(channels, channels, size, size, dtype=dtype)
    weight[range(channels), range(channels)] = kernel
    return weight


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU, keeping the spatial size."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class SmallFCN(nn.Module):
    """A small FCN: ``depth`` blocks of (two 3x3 convolutions, 2x2 max pooling), a 1x1 score layer,
    and one transposed convolution that upsamples the scores by ``2**depth``, initialized to
    bilinear interpolation. Works on any input whose sides are multiples of ``2**depth``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 11, width: int = 16, depth: int = 2):
        super().__init__()
        layers, c = [], in_channels
        for i in range(depth):
            layers += [conv_block(c, width * 2**i), nn.MaxPool2d(2)]
            c = width * 2**i
        self.encoder = nn.Sequential(*layers, conv_block(c, c))
        self.score = nn.Conv2d(c, num_classes, 1)
        stride = 2**depth
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, 2 * stride, stride=stride, padding=stride // 2, bias=False)
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(2 * stride, num_classes))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SmallFCN expects images (N, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(f"SmallFCN needs sides that are multiples of {self.stride}, got {h}x{w}")
        return self.upsample(self.score(self.encoder(x)))
