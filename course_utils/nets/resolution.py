"""Networks that recover resolution: FCN-32s/16s/8s, a SegNet-style unpooling network, a U-Net.

Taught in {ref}`sec-recovering-resolution` (chapter 4). All of them share one
encoder, a miniature VGG-16: five stages of two 3x3 convolutions followed by 2x2 max pooling, so the
deepest features have stride 32, as in the FCN paper (Long, Shelhamer and Darrell, 2015). They
differ only in how they get from stride 32 back to pixels:

* :class:`FCN` with ``stride=32`` scores the stride-32 features and upsamples the scores 32x in one
  bilinear step; ``stride=16`` and ``stride=8`` first fuse in scores of the pool4 (stride 16) and
  pool3 (stride 8) features, one 2x step at a time. :func:`grow_fcn` starts an FCN-16s from a
  trained FCN-32s (and an FCN-8s from an FCN-16s): the paper's staged training.
* :class:`SegNetStyle` remembers where every max came from (the argmax "switches") and unpools with
  them, stage by stage.
* :class:`UNet` upsamples stage by stage and concatenates the encoder features of the same
  resolution.

The pieces lab 4 asks students to write are *arguments* here, not part of the package: the skip
fusion of FCN-16s/8s (``fusion``), the U-Net decoder block (``block``) and max-unpooling
(``unpool``). Their interfaces:

``fusion(skip_channels, num_classes)``
    a module whose ``forward(coarse, skip)`` takes class scores ``(N, K, h, w)`` at stride ``2s``
    and features ``(N, skip_channels, H, W)`` at stride ``s`` and returns scores ``(N, K, H, W)``.
``block(in_channels, skip_channels, out_channels)``
    a module whose ``forward(x, skip)`` takes ``(N, in_channels, h, w)`` and the encoder features
    ``(N, skip_channels, H, W)`` at twice the resolution and returns ``(N, out_channels, H, W)``.
``unpool(values, switches, output_size)``
    places ``values`` ``(N, C, h, w)`` at the flat positions ``switches`` (as returned by
    ``F.max_pool2d(..., return_indices=True)``) of zero maps of ``output_size = (H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks
from .small_fcn import bilinear_kernel, conv_block

NUM_STAGES = 5
FCN_STRIDES = (32, 16, 8)


def _check_widths(widths) -> tuple[int, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != NUM_STAGES or min(widths) < 1:
        raise ValueError(f"widths must be {NUM_STAGES} positive channel counts (one per stage), got {widths}")
    return widths


@dataclass
class EncoderOutput:
    """What :class:`Encoder` returns. Stage ``i`` (0-based) has ``features[i]`` at stride ``2**i``
    (its last convolution, before pooling), ``pooled[i]`` at stride ``2**(i+1)`` and, when asked for,
    ``switches[i]``: the argmax positions of that pooling."""

    features: list
    pooled: list
    switches: list | None


class Encoder(nn.Module):
    """A miniature VGG-16: five stages of :func:`course_utils.nets.conv_block` and 2x2 max pooling.

    ``pooled[2]``, ``pooled[3]`` and ``pooled[4]`` are the paper's pool3, pool4 and pool5 (strides 8,
    16, 32). With ``return_indices`` the pooling also returns its argmax switches, for unpooling.
    """

    def __init__(self, in_channels: int = 1, widths=(8, 16, 32, 32, 64), return_indices: bool = False):
        super().__init__()
        widths = _check_widths(widths)
        self.in_channels, self.widths, self.return_indices = in_channels, widths, return_indices
        chans = (in_channels,) + widths
        self.stages = nn.ModuleList(conv_block(chans[i], chans[i + 1]) for i in range(NUM_STAGES))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        features, pooled, switches = [], [], []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
            if self.return_indices:
                x, idx = F.max_pool2d(x, 2, return_indices=True)
                switches.append(idx)
            else:
                x = F.max_pool2d(x, 2)
            pooled.append(x)
        return EncoderOutput(features, pooled, switches if self.return_indices else None)


class FCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s on the miniature VGG encoder.

    Stride 32: ``head`` (the paper's fc6 and fc7, as convolutions) and a 1x1 score layer on pool5.
    Stride 16 adds ``fuse_pool4 = fusion(widths[3], num_classes)``, stride 8 also
    ``fuse_pool3 = fusion(widths[2], num_classes)``. The last step upsamples the scores by ``stride``
    with a *fixed* bilinear transposed convolution (kernel ``2 * stride``), as in the reference
    implementation; it is a buffer, not a parameter, so :func:`grow_fcn` can copy everything else.
    """

    def __init__(
        self,
        num_classes: int = 11,
        in_channels: int = 1,
        widths=(8, 16, 32, 32, 64),
        head_width: int = 64,
        stride: int = 32,
        fusion: Callable[[int, int], nn.Module] | None = None,
    ):
        super().__init__()
        if stride not in FCN_STRIDES:
            raise ValueError(f"an FCN here has output stride 32, 16 or 8, got {stride}")
        if stride < 32 and fusion is None:
            raise ValueError(
                f"FCN-{stride}s fuses skip scores: pass fusion=YourFusion, a class called as "
                "fusion(skip_channels, num_classes) whose forward(coarse, skip) returns the fused scores"
            )
        widths = _check_widths(widths)
        self.num_classes, self.in_channels, self.widths = num_classes, in_channels, widths
        self.head_width, self.stride, self.fusion = head_width, stride, fusion
        self.encoder = Encoder(in_channels, widths)
        self.head = conv_block(widths[-1], head_width)
        self.score = nn.Conv2d(head_width, num_classes, 1)
        if stride <= 16:
            self.fuse_pool4 = fusion(widths[3], num_classes)
        if stride <= 8:
            self.fuse_pool3 = fusion(widths[2], num_classes)
        self.register_buffer("upsample_weight", bilinear_kernel(2 * stride, num_classes), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, f"FCN-{self.stride}s", self.in_channels, 32)
        enc = self.encoder(x)
        scores = self.score(self.head(enc.pooled[4]))  # stride 32
        if self.stride <= 16:
            scores = self._fuse(self.fuse_pool4, scores, enc.pooled[3], 16)
        if self.stride <= 8:
            scores = self._fuse(self.fuse_pool3, scores, enc.pooled[2], 8)
        s = self.stride
        return F.conv_transpose2d(scores, self.upsample_weight.to(scores.dtype), stride=s, padding=s // 2)

    def _fuse(self, module: nn.Module, coarse: torch.Tensor, skip: torch.Tensor, stride: int) -> torch.Tensor:
        fused = module(coarse, skip)
        expected = (coarse.shape[0], self.num_classes) + tuple(skip.shape[-2:])
        if not isinstance(fused, torch.Tensor) or tuple(fused.shape) != expected:
            got = tuple(fused.shape) if isinstance(fused, torch.Tensor) else type(fused).__name__
            raise ValueError(f"the fusion at stride {stride} should return scores of shape {expected}, got {got}")
        return fused


def grow_fcn(coarser: FCN, fusion: Callable[[int, int], nn.Module] | None = None) -> FCN:
    """The next stage of the paper's staged training: an FCN-16s from an FCN-32s, or an FCN-8s from
    an FCN-16s. Every parameter the two share is copied; only the new fusion keeps the
    initialization that ``fusion`` gives it (zero score layer, bilinear 2x upsampling), so the grown
    network starts out predicting (nearly) what the coarser one predicts.
    """
    if not isinstance(coarser, FCN):
        raise TypeError(f"grow_fcn expects an FCN, got {type(coarser).__name__}")
    if coarser.stride == 8:
        raise ValueError("FCN-8s is the finest FCN here; there is no stride-4 stage to grow")
    fusion = fusion or coarser.fusion
    finer = FCN(coarser.num_classes, coarser.in_channels, coarser.widths, coarser.head_width, coarser.stride // 2, fusion)
    finer.to(next(coarser.parameters()).device)
    missing, unexpected = finer.load_state_dict(coarser.state_dict(), strict=False)
    new = "fuse_pool4." if coarser.stride == 32 else "fuse_pool3."
    if unexpected or any(not k.startswith(new) for k in missing):
        raise RuntimeError(f"could not copy the coarser FCN: missing {missing}, unexpected {unexpected}")
    return finer


class SegNetStyle(nn.Module):
    """A SegNet-style encoder-decoder: the encoder keeps its max-pooling switches; a stride-32
    :func:`conv_block` (the counterpart of the FCN's fc6-fc7, as wide as pool5 so that the pool5
    switches fit) follows it; the decoder unpools with the switches (``unpool(values, switches,
    output_size)``) and follows each unpooling with a :func:`conv_block` that fills in the zeros,
    mirroring the encoder's widths. No encoder features cross over, only the switches: that is what
    separates it from a U-Net."""

    def __init__(
        self,
        num_classes: int = 11,
        in_channels: int = 1,
        widths=(8, 16, 32, 32, 64),
        unpool: Callable[[torch.Tensor, torch.Tensor, tuple], torch.Tensor] | None = None,
    ):
        super().__init__()
        if unpool is None:
            raise ValueError("SegNetStyle needs unpool=your_function, called as unpool(values, switches, output_size)")
        widths = _check_widths(widths)
        self.in_channels, self.widths, self.unpool = in_channels, widths, unpool
        self.encoder = Encoder(in_channels, widths, return_indices=True)
        self.head = conv_block(widths[-1], widths[-1])
        outs = (widths[0],) + widths[:-1]  # stage i decodes widths[i] -> widths[i-1] (the last keeps widths[0])
        self.decoder = nn.ModuleList(conv_block(widths[i], outs[i]) for i in range(NUM_STAGES))
        self.score = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, "SegNetStyle", self.in_channels, 32)
        enc = self.encoder(x)
        y = self.head(enc.pooled[-1])
        for i in reversed(range(NUM_STAGES)):
            size = tuple(enc.features[i].shape[-2:])
            up = checks.returned(self.unpool(y, enc.switches[i], size), tuple(y.shape[:2]) + size, "unpool")
            y = self.decoder[i](up)
        return self.score(y)


class UNet(nn.Module):
    """A U-Net on the same encoder: a bottleneck :func:`conv_block` at stride 32, then five decoder
    blocks ``block(in_channels, skip_channels, out_channels)``, each doubling the resolution and
    concatenating the encoder features of that resolution, back to stride 1; a 1x1 score layer."""

    def __init__(
        self,
        num_classes: int = 11,
        in_channels: int = 1,
        widths=(8, 16, 32, 32, 64),
        head_width: int = 64,
        block: Callable[[int, int, int], nn.Module] | None = None,
    ):
        super().__init__()
        if block is None:
            raise ValueError("UNet needs block=YourBlock, called as block(in_channels, skip_channels, out_channels)")
        widths = _check_widths(widths)
        self.in_channels, self.widths, self.head_width = in_channels, widths, head_width
        self.encoder = Encoder(in_channels, widths)
        self.bottleneck = conv_block(widths[-1], head_width)
        ins = widths[1:] + (head_width,)  # the decoder at stage i receives the output of stage i+1
        self.decoder = nn.ModuleList(block(ins[i], widths[i], widths[i]) for i in range(NUM_STAGES))
        self.score = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.images(x, "UNet", self.in_channels, 32)
        enc = self.encoder(x)
        y = self.bottleneck(enc.pooled[-1])
        for i in reversed(range(NUM_STAGES)):
            skip = enc.features[i]
            expected = (skip.shape[0], self.widths[i]) + tuple(skip.shape[-2:])
            y = checks.returned(self.decoder[i](y, skip), expected, f"decoder block {i}")
        return self.score(y)
