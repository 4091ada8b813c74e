"""Diagrams of the three pixel-labeling designs, of a fully-connected layer as a convolution, and of a
pooling turned into a dilation, drawn from the networks and tensors they describe.

Taught in {ref}`sec-fcn` and {ref}`sec-fc-as-conv` (chapter 2). Nothing is typed by hand: every
shape comes from a forward pass on zeros, every score from the layer's own weights, and every
position a kernel reads from pooling and convolving index tensors. Inputs are grey, feature maps
blue, fully-connected codes yellow, scores green; what one output reads is marked in vermillion.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle
from torch import nn

from .. import checks
from .masks import PALETTE

INPUT, FEATURES, CODE, SCORES, MARK, READ = PALETTE[0], PALETTE[2], PALETTE[4], PALETTE[3], PALETTE[6], PALETTE[1]
_PIXELWISE = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout,
              nn.Dropout2d, nn.Identity)


# ---------------------------------------------------------------------------------------------------
# stages of a network: what its layers produce, read from a forward pass on zeros


@dataclass
class Stage:
    """One box of a diagram: the shape (without the batch) that ``layers`` produce, and their names."""

    shape: tuple[int, ...]
    layers: list[nn.Module]

    @property
    def name(self) -> str:
        return describe_layers(self.layers)


def _layer_name(m: nn.Module) -> str | None:
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    if isinstance(m, nn.ConvTranspose2d):
        return f"upsample ×{pair(m.stride)[0]}"
    if isinstance(m, nn.Conv2d):
        (kh, kw), d = m.kernel_size, pair(m.dilation)[0]
        return f"conv {kh}×{kw}" + (f", dilation {d}" if d > 1 else "")
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        k = pair(m.kernel_size)[0]
        return f"{'max' if isinstance(m, nn.MaxPool2d) else 'avg'} pool {k}×{k}"
    if isinstance(m, nn.Linear):
        return "fully connected"
    if isinstance(m, nn.Flatten):
        return "flatten"
    if isinstance(m, nn.Unflatten):
        return "reshape"
    if isinstance(m, nn.Upsample):
        return f"upsample ×{m.scale_factor:g}" if m.scale_factor else "upsample"
    if isinstance(m, _PIXELWISE):
        return None  # pixel-wise layers change no shape and are left out of the drawing
    return type(m).__name__


def describe_layers(layers) -> str:
    """``"6 × conv 3×3, 2 × max pool 2×2"``: the shape-changing layers inside ``layers``, counted in order."""
    counts: dict[str, int] = {}
    for layer in layers:
        for m in layer.modules():
            if next(m.children(), None) is None and (name := _layer_name(m)) is not None:
                counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} × {name}" if n > 1 else name for name, n in counts.items()) or "pixel-wise"


def stages(net: nn.Module, input_shape, who: str = "stages") -> list[Stage]:
    """The shapes a network's direct children produce for one zero input of ``input_shape`` (C, H, W),
    the input first; children that keep the shape (ReLU, batch norm) join the stage before them.
    The network is run in eval mode, so batch norm's running statistics are left as they were."""
    checks.module(net, who)
    input_shape = tuple(checks.integer(s, f"{who}: input_shape", low=1) for s in input_shape)
    children = list(net.children()) or [net]
    seen: list[tuple[nn.Module, tuple[int, ...]]] = []
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append((m, tuple(o.shape[1:])))) for c in children]
    training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"{who}: the network does not accept one input of shape {input_shape} (C, H, W): {error}. "
                         "A network with fully-connected layers accepts one input size only: pass the size it "
                         "was built for") from None
    finally:
        net.train(training)
        for h in hooks:
            h.remove()
    out = [Stage(input_shape, [])]
    for m, shape in seen:
        if shape == out[-1].shape and len(out) > 1:
            out[-1].layers.append(m)
        else:
            out.append(Stage(shape, [m]))
    return out


def _shape_text(shape) -> str:
    return "×".join(f"{s:,}" if len(shape) == 1 else str(s) for s in shape)


# ---------------------------------------------------------------------------------------------------
# drawing primitives: maps as stacks of squares (side proportional to H and W), vectors as bars


_DEPTH = 0.07  # offset of each layer of a stack, drawn for up to three channels


def _vector_height(length: int) -> float:
    return min(1.7, 0.16 * np.log2(max(length, 2)))


def _draw_stage(ax, x0: float, y: float, shape, unit: float, colour: str, gid: str):
    """Draw one tensor with its left edge at ``x0``, centred on ``y``; return its (x0, x1, half height)."""
    if len(shape) == 3:
        c, h, w = shape
        layers = min(c, 3)
        for k in reversed(range(layers)):
            ax.add_patch(Rectangle((x0 + k * _DEPTH, y - h * unit / 2 + k * _DEPTH), w * unit, h * unit,
                                   facecolor=colour, edgecolor="0.25", lw=0.8, zorder=2 + (layers - k),
                                   gid=gid if k == 0 else None))
        x1, half = x0 + w * unit + (layers - 1) * _DEPTH, h * unit / 2 + (layers - 1) * _DEPTH
    else:
        height = _vector_height(int(np.prod(shape)))
        ax.add_patch(Rectangle((x0, y - height / 2), 0.14, height, facecolor=colour, edgecolor="0.25", lw=0.8,
                               zorder=3, gid=gid))
        x1, half = x0 + 0.14, height / 2
    ax.text((x0 + x1) / 2, y - half - 0.08, _shape_text(shape), ha="center", va="top", fontsize=8.5)
    return x0, x1, half


def _arrow(ax, x0: float, x1: float, y: float, label: str, label_y: float | None = None):
    ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.1))
    ax.text((x0 + x1) / 2, y + 0.1 if label_y is None else label_y, label.replace(", ", ",\n"), ha="center",
            va="bottom", fontsize=8.5, linespacing=1.1)


def _fan(ax, x0: float, half0: float, x1: float, half1: float, y: float, highlight: int | None = None):
    """All-to-all lines between two bars: a fully-connected layer. ``highlight``: one right-hand point
    whose lines to every left-hand point are drawn in vermillion."""
    left, right = np.linspace(y - half0, y + half0, 7)[1:-1], np.linspace(y - half1, y + half1, 7)[1:-1]
    for hot in (False, True):
        lines = [[(x0, a), (x1, b)] for j, b in enumerate(right) for a in left if (j == highlight) == hot]
        ax.add_collection(LineCollection(lines, colors=MARK if hot else "0.6", linewidths=1.0 if hot else 0.5,
                                         zorder=4 if hot else 1, gid="fan highlight" if hot else "fan"))


def _flow(ax, net_stages: list[Stage], x: float, y: float, unit: float, gap: float = 1.2, first_colour=INPUT,
          highlight: int | None = None, skip_first: tuple | None = None):
    """Draw a list of stages left to right, joined by arrows labelled with their layers (fans for
    fully-connected layers); return the (x0, x1, half height) of every stage. ``skip_first``: the
    (x0, x1, half height) of a first stage drawn by the caller."""
    k_out = net_stages[-1].shape[0]
    scores_from = next(i for i in range(1, len(net_stages))
                       if all(s.shape[0] == k_out and len(s.shape) == len(net_stages[i].shape) for s in net_stages[i:]))
    boxes = []
    for i, stage in enumerate(net_stages):
        colour = first_colour if i == 0 else SCORES if i >= scores_from else FEATURES if len(stage.shape) == 3 else CODE
        if i > 0:  # room for the longest line of the arrow's label
            x += max(gap, 0.1 * max(len(line) for line in stage.name.split(", ")) + 0.4)
        if i == 0 and skip_first is not None:
            boxes.append(skip_first)
            x = skip_first[1]
            continue
        box = _draw_stage(ax, x, y, stage.shape, unit, colour, gid=f"stage {_shape_text(stage.shape)}")
        if i > 0:
            (p0, p1, ph), (b0, b1, bh) = boxes[-1], box
            fully_connected = any(isinstance(m, nn.Linear) for layer in stage.layers for m in layer.modules())
            if fully_connected and len(stage.shape) == 1 and len(net_stages[i - 1].shape) == 1:
                _fan(ax, p1, ph, b0, bh, y, highlight)
                ax.text((p1 + b0) / 2, y + max(ph, bh) + 0.05, stage.name, ha="center", va="bottom", fontsize=8.5)
            else:
                _arrow(ax, p1 + 0.05, b0 - 0.08, y, stage.name)
        boxes.append(box)
        x = box[1]
    return boxes


# ---------------------------------------------------------------------------------------------------
# 1. three ways to label every pixel


def _shape3(shape, name: str) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"{name} is the shape (C, H, W) of one image, got {shape}; leave out the batch dimension")
    return tuple(checks.integer(s, name, low=1) for s in shape)


def draw_three_designs(patch_net: nn.Module, window: int, fc_net: nn.Module, fc_input, fcn: nn.Module, image,
                       field: int, axes=None):
    """Three rows, one per design, with the shapes a forward pass on zeros gives:

    1. the sliding window: the ``window`` x ``window`` window around a pixel u of an ``image`` (C, H, W)
       is cut out (drawn enlarged) and classified by ``patch_net``, once per pixel;
    2. the fully-connected encoder-decoder ``fc_net`` on its one input size ``fc_input`` (C, H, W),
       its fully-connected layers drawn as all-to-all lines;
    3. the FCN ``fcn`` on ``image``, with the ``field`` x ``field`` square of the input (its measured
       receptive field) that one output pixel reads.

    Returns the three axes (made in a new figure when ``axes`` is None).
    """
    window = checks.integer(window, "draw_three_designs: window", low=1)
    if window % 2 == 0:
        raise ValueError(f"draw_three_designs: window must be odd so that it has a centre pixel u, got {window}")
    field = checks.integer(field, "draw_three_designs: field", low=1)
    image, fc_input = _shape3(image, "draw_three_designs: image"), _shape3(fc_input, "draw_three_designs: fc_input")
    c, h, w = image
    patch = stages(patch_net, (c, window, window), "draw_three_designs: patch_net")
    if len(patch[-1].shape) != 1:
        raise ValueError(f"draw_three_designs: patch_net should give K scores for one window, got shape "
                         f"{patch[-1].shape}; it is the classifier of one {window}x{window} window")
    fc = stages(fc_net, fc_input, "draw_three_designs: fc_net")
    conv = stages(fcn, image, "draw_three_designs: fcn")
    for name, st, size in (("fc_net", fc, fc_input[1:]), ("fcn", conv, image[1:])):
        if len(st[-1].shape) != 3 or st[-1].shape[1:] != size:
            raise ValueError(f"draw_three_designs: {name} should give scores (K, {size[0]}, {size[1]}) for an input of "
                             f"that size, got {st[-1].shape}; did it forget to upsample back to the image size?")
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(12.5, 7.4))
    unit = 1.6 / max(h, w, *fc_input[1:])  # one input pixel, the same in all three rows
    y = 0.9

    # 1. sliding window: the image, the window around u, the window enlarged and the patch classifier
    ax = axes[0]
    u = (h // 3, w // 3)
    ax.add_patch(Rectangle((0, y - h * unit / 2), w * unit, h * unit, facecolor=INPUT, edgecolor="0.25", lw=0.8,
                           gid=f"image {c}×{h}×{w}"))
    wx, wy = (u[1] - window // 2) * unit, y + h * unit / 2 - (u[0] + window // 2 + 1) * unit
    ax.add_patch(Rectangle((wx, wy), window * unit, window * unit, fill=False, edgecolor=MARK, lw=1.6, zorder=5,
                           gid=f"window {window}×{window}"))
    ax.plot(wx + window * unit / 2, wy + window * unit / 2, "s", color=MARK, ms=3, zorder=6)
    ax.text(wx + window * unit / 2, wy - 0.03, "u", color=MARK, ha="center", va="top", fontsize=10)
    ax.text(w * unit / 2, y - h * unit / 2 - 0.08, f"{c}×{h}×{w} image:\n{h * w:,} pixels, {h * w:,} windows",
            ha="center", va="top", fontsize=8.5)
    zoom = 1.25 / window
    x_win = w * unit + 1.1
    ax.add_patch(Rectangle((x_win, y - window * zoom / 2), window * zoom, window * zoom, facecolor=INPUT,
                           edgecolor=MARK, lw=1.6, zorder=2, gid=f"stage {_shape_text(patch[0].shape)}"))
    ax.plot(x_win + window * zoom / 2, y, "s", color=MARK, ms=5, zorder=6)
    for corner in (0, 1):  # dashed lines from the window to its enlarged copy: "cut out"
        ax.plot([wx + window * unit, x_win], [wy + corner * window * unit, y + (corner - 0.5) * window * zoom],
                ls="--", color=MARK, lw=0.8)
    ax.text((w * unit + x_win) / 2 + 0.05, y + 0.16, "cut out", ha="center", va="bottom", fontsize=8.5)
    ax.text(x_win + window * zoom / 2, y - window * zoom / 2 - 0.08, f"{_shape_text(patch[0].shape)}\nwindow",
            ha="center", va="top", fontsize=8.5)
    boxes = _flow(ax, patch, x_win, y, zoom, skip_first=(x_win, x_win + window * zoom, window * zoom / 2))
    right = [boxes[-1][1] + 1.2]
    ax.text(boxes[-1][1] + 0.15, y, f"{patch[-1].shape[0]} scores\nfor pixel u", va="center", fontsize=8.5)
    ax.set_title(f"1. sliding window: one forward pass of the patch classifier per pixel ({h * w:,} for a "
                 f"{h}×{w} image)", loc="left", fontsize=10)

    # 2. fully-connected encoder-decoder: every score reads the whole code
    ax = axes[1]
    code_at = next(i for i, s in enumerate(fc)
                   if any(isinstance(m, nn.Linear) for layer in s.layers for m in layer.modules()))
    code = int(np.prod(fc[code_at - 1].shape))
    boxes = _flow(ax, fc, 0.0, y, unit, highlight=2)
    right.append(boxes[-1][1])
    ax.set_title(f"2. fully-connected encoder-decoder ({fc_input[1]}×{fc_input[2]} images only): every score reads "
                 f"all {code:,} code entries", loc="left", fontsize=10)

    # 3. FCN: convolutions and poolings, a coarse score map, upsampling; one output pixel reads a square
    ax = axes[2]
    boxes = _flow(ax, conv, 0.0, y, unit)
    v = (h // 2, w // 2)
    top = y + h * unit / 2
    side = min(field, h, w)
    fx = min(max(v[1] - field // 2, 0), w - side) * unit
    fy = top - (min(max(v[0] - field // 2, 0), h - side) + side) * unit
    ax.add_patch(Rectangle((fx, fy), side * unit, side * unit, fill=False, edgecolor=MARK, lw=1.6, zorder=6,
                           gid=f"field {side}×{side}"))
    x_out = boxes[-1][0]
    ax.plot(x_out + (v[1] + 0.5) * unit, top - (v[0] + 0.5) * unit, "s", color=MARK, ms=4, zorder=7)
    ax.text(x_out + (v[1] + 0.5) * unit, top - (v[0] + 0.5) * unit - 0.06, "v", color="white", ha="center",
            va="top", fontsize=10, zorder=7)
    ax.text(boxes[-1][1] + 0.15, y, f"output pixel v\nreads the {side}×{side}\nsquare of the input\nmarked on the left",
            va="center", fontsize=8.5)
    right.append(boxes[-1][1] + 1.6)
    ax.set_title(f"3. fully-convolutional network: convolutions and poolings, then upsampling; each output pixel "
                 f"reads a {side}×{side} square", loc="left", fontsize=10)

    for ax in axes:
        ax.set_xlim(-0.15, max(right))
        ax.set_ylim(-0.55, 2.0)
        ax.set_aspect("equal")
        ax.axis("off")
    return axes


# ---------------------------------------------------------------------------------------------------
# 2. a fully-connected layer is a convolution whose kernel covers its whole input


def _grid(ax, x0: float, y0: float, rows: int, cols: int, cell: float, colour: str, layers: int, gid: str):
    for k in reversed(range(layers)):
        ax.add_patch(Rectangle((x0 + k * _DEPTH, y0 + k * _DEPTH), cols * cell, rows * cell, facecolor=colour,
                               edgecolor="0.25", lw=0.8, zorder=2 + layers - k, gid=gid if k == 0 else None))
    for i in range(1, rows):
        ax.plot([x0, x0 + cols * cell], [y0 + i * cell] * 2, color="0.35", lw=0.4, zorder=2 + layers)
    for j in range(1, cols):
        ax.plot([x0 + j * cell] * 2, [y0, y0 + rows * cell], color="0.35", lw=0.4, zorder=2 + layers)


def draw_fc_as_conv(linear: nn.Linear, map_shape, big_map: torch.Tensor, row: int = 0, shown: int = 4, ax=None):
    """A fully-connected layer on a C x h x w map is a convolution with an h x w kernel.

    Left: the ``map_shape`` (C, h, w) map of one window, flattened and multiplied by row ``row`` of the
    weights of ``linear``: one score. Middle: that row reshaped into a C x h x w kernel (its first
    ``shown`` channels). Right: the same kernel (and bias) sliding over ``big_map`` (C, H, W), the map of
    a larger image, gives an (H - h + 1) x (W - w + 1) score map, drawn with its first and last windows.

    Returns the axes (made in a new figure when ``ax`` is None); the score map is its last image.
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"draw_fc_as_conv expects the fully-connected layer (an nn.Linear), got {checks.describe(linear)}")
    map_shape = _shape3(map_shape, "draw_fc_as_conv: map_shape")
    c, h, w = map_shape
    if linear.in_features != c * h * w:
        raise ValueError(f"draw_fc_as_conv: a Linear with {linear.in_features} inputs reads a map of C*h*w = "
                         f"{linear.in_features} numbers, but map_shape {map_shape} holds {c * h * w}; pass the shape "
                         "of the map that feeds it (a forward pass of the layers before it on one window gives it)")
    big = checks.tensor(big_map, "draw_fc_as_conv: big_map", kind="float")
    big = big[0] if big.dim() == 4 and big.shape[0] == 1 else big
    checks.tensor(big, "draw_fc_as_conv: big_map", ndim=3, layout="(C, H, W)")
    if big.shape[0] != c or big.shape[1] < h or big.shape[2] < w:
        raise ValueError(f"draw_fc_as_conv: big_map must have {c} channels and sides of at least {h}x{w}, like "
                         f"the map of one window, got {checks.describe(big_map)}")
    row = checks.integer(row, "draw_fc_as_conv: row", low=0)
    if row >= linear.out_features:
        raise ValueError(f"draw_fc_as_conv: row must be below the layer's {linear.out_features} outputs, got {row}")
    shown = min(checks.integer(shown, "draw_fc_as_conv: shown", low=1), c)
    with torch.no_grad():
        kernel = linear.weight[row].detach().reshape(c, h, w).cpu()
        bias = linear.bias[row : row + 1].detach().cpu() if linear.bias is not None else None
        scores = F.conv2d(big.detach().cpu()[None], kernel[None], bias)[0, 0].numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(13, 3.3))
    H, W = big.shape[1:]
    top = 1.9  # every panel hangs from this line, so that position (0, 0) is top left everywhere

    def title(x, text):
        ax.text(x, top + 0.45, text, ha="left", va="bottom", fontsize=10)

    # one window: map -> flatten -> one row of the weights -> one score
    cell = 1.5 / max(h, w)
    mid = top - h * cell / 2
    _grid(ax, 0, top - h * cell, h, w, cell, FEATURES, min(c, 3), gid=f"window map {c}×{h}×{w}")
    ax.text(w * cell / 2, top - h * cell - 0.1, f"{c}×{h}×{w} map\nof one window", ha="center", va="top", fontsize=8.5)
    bar = _vector_height(c * h * w)
    x_bar = w * cell + 1.0
    ax.add_patch(Rectangle((x_bar, mid - bar / 2), 0.14, bar, facecolor=CODE, edgecolor="0.25", lw=0.8))
    ax.text(x_bar + 0.07, mid - bar / 2 - 0.1, f"{c * h * w:,}", ha="center", va="top", fontsize=8.5)
    _arrow(ax, w * cell + 0.2, x_bar - 0.08, mid, "flatten")
    x_out = x_bar + 1.9
    ax.add_patch(Rectangle((x_out, mid - 0.1), 0.2, 0.2, facecolor=SCORES, edgecolor="0.25", lw=0.8, gid="one score"))
    _arrow(ax, x_bar + 0.22, x_out - 0.08, mid, f"· row {row} of the\n{linear.out_features}×{linear.in_features} weights")
    ax.text(x_out + 0.1, mid - 0.2, "1 score", ha="center", va="top", fontsize=8.5)
    title(0, f"fully connected: {c * h * w:,} numbers → 1 score")

    # the row reshaped into a c x h x w kernel, channel by channel
    x0, size, step = x_out + 1.3, 1.0, 1.2
    vmax = float(kernel.abs().max()) or 1.0
    for k in range(shown):
        ax.imshow(kernel[k].numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest",
                  extent=(x0 + k * step, x0 + k * step + size, top - size * h / w, top), zorder=2)
        ax.text(x0 + k * step + size / 2, top - size * h / w - 0.08, f"channel {k}", ha="center", va="top", fontsize=8)
    if shown < c:
        ax.text(x0 + shown * step - 0.05, top - size * h / w / 2, f"… {c - shown}\nmore", va="center", fontsize=8.5)
    title(x0, f"row {row} reshaped: a {c}×{h}×{w} kernel")

    # the same kernel slides over a larger map
    x0 = x0 + shown * step + 1.0
    cell = 1.9 / max(H, W)
    _grid(ax, x0, top - H * cell, H, W, cell, FEATURES, min(c, 3), gid=f"big map {c}×{H}×{W}")
    oh, ow = scores.shape
    x_s = x0 + W * cell + 1.9
    ax.imshow(scores, cmap="Greens", interpolation="nearest", extent=(x_s, x_s + ow * cell, top - oh * cell, top), zorder=2)
    ax.add_patch(Rectangle((x_s, top - oh * cell), ow * cell, oh * cell, fill=False, edgecolor="0.25", lw=0.8, zorder=3))
    for (i, j), colour in (((0, 0), MARK), ((oh - 1, ow - 1), PALETTE[10])):  # indigo
        ax.add_patch(Rectangle((x0 + j * cell, top - (i + h) * cell), w * cell, h * cell, fill=False, edgecolor=colour,
                               lw=1.8, zorder=8, gid=f"kernel at {i},{j}"))
        ax.add_patch(Rectangle((x_s + j * cell, top - (i + 1) * cell), cell, cell, fill=False, edgecolor=colour,
                               lw=1.8, zorder=8, gid=f"score at {i},{j}"))
    _arrow(ax, x0 + W * cell + 0.25, x_s - 0.1, top - H * cell / 2, f"the {h}×{w} kernel\nat every position")
    ax.text(x0 + W * cell / 2, top - H * cell - 0.1, f"{c}×{H}×{W} map of a larger image", ha="center", va="top",
            fontsize=8.5)
    ax.text(x_s + ow * cell / 2, top - oh * cell - 0.1, f"{oh}×{ow} score map", ha="center", va="top", fontsize=8.5)
    title(x0, f"the kernel slides: {oh}×{ow} scores instead of one")
    ax.set_xlim(-0.1, max(x_s + ow * cell, x0 + 4.1) + 0.1)
    ax.set_ylim(top - max(H * cell, h * cell, 1.0) - 0.55, top + 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


# ---------------------------------------------------------------------------------------------------
# 3. a stride-2 pooling inside a window is a stride-1 pooling followed by dilated kernels


@dataclass
class PoolingReads:
    """What one output reads, in both versions: ``pooled[j]`` is the pooled position under tap j,
    ``inputs`` the input pixels those pooled cells cover, ``outputs`` how many outputs the version has,
    and ``cover[p]`` the (first, last) input pixel of pooled cell p."""

    output: int
    pooled: list[int]
    inputs: list[int]
    outputs: int
    cover: list[tuple[int, int]]


def pooling_dilation_reads(length: int = 16, taps: int = 3, stride: int = 2, output: int = 1):
    """Pool a 1-D input of ``length`` pixels with a ``stride`` x ``stride`` window and apply a
    ``taps``-tap kernel, in two ways: with pooling stride ``stride`` and an ordinary kernel (inside a
    window), and with pooling stride 1 and the kernel dilated by ``stride`` (on the whole image).
    ``output`` is the output of the first; the second's matching output is ``stride * output``.

    Everything is computed by pooling and convolving index tensors: the pooled cells' first and last
    input pixels with ``F.max_pool1d`` of the pixel indices, the pooled cell under each tap with
    ``F.conv1d`` of the pooled indices and a one-hot kernel. Returns (strided, dilated) ``PoolingReads``.
    """
    length = checks.integer(length, "pooling_dilation_reads: length", low=1)
    taps = checks.integer(taps, "pooling_dilation_reads: taps", low=1)
    stride = checks.integer(stride, "pooling_dilation_reads: stride", low=1)
    output = checks.integer(output, "pooling_dilation_reads: output", low=0)
    if length < stride * taps:
        raise ValueError(f"pooling_dilation_reads: {length} pixels are too few for a {stride}-wide pooling and a "
                         f"{taps}-tap kernel: the window version needs at least stride * taps = {stride * taps}")
    pixels = torch.arange(length, dtype=torch.float64)[None, None]
    result = []
    for pool_stride, dilation, out in ((stride, 1, output), (1, stride, stride * output)):
        first = -F.max_pool1d(-pixels, stride, pool_stride)[0, 0]
        last = F.max_pool1d(pixels, stride, pool_stride)[0, 0]
        cells = torch.arange(len(first), dtype=torch.float64)[None, None]
        under = [F.conv1d(cells, F.one_hot(torch.tensor([j]), taps).double()[None], dilation=dilation)[0, 0]
                 for j in range(taps)]
        n_out = len(under[0])
        if not 0 <= out < n_out:  # checked on the window version; its outputs always exist in the dilated one
            raise ValueError(f"pooling_dilation_reads: output must be below {n_out}, the number of outputs of a "
                             f"{taps}-tap kernel after a stride-{stride} pooling of {length} pixels, got {output}")
        pooled = [int(u[out]) for u in under]
        inputs = sorted({i for p in pooled for i in range(int(first[p]), int(last[p]) + 1)})
        result.append(PoolingReads(out, pooled, inputs, n_out, [(int(a), int(b)) for a, b in zip(first, last)]))
    return tuple(result)


def draw_pooling_as_dilation(length: int = 16, taps: int = 3, stride: int = 2, output: int = 1, axes=None):
    """Two 1-D pictures with the input on top, the pooled map and the outputs below: a ``stride``-wide
    pooling with stride ``stride`` then a ``taps``-tap kernel (inside a window), and the same pooling
    with stride 1 then the kernel dilated by ``stride`` (on the whole image). The taps of one output,
    the pooled cells they read and the input pixels those cover are marked; the positions come from
    :func:`pooling_dilation_reads`. Returns the two axes (made in a new figure when ``axes`` is None)."""
    strided, dilated = pooling_dilation_reads(length, taps, stride, output)
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(10.5, 4.2))
    rows = {"input": 2.0, "pooled": 1.0, "output": 0.0}
    height = 0.55
    for ax, reads, pool_stride, dilation in ((axes[0], strided, stride, 1), (axes[1], dilated, 1, stride)):
        for i in range(length):
            hot = i in reads.inputs
            ax.add_patch(Rectangle((i, rows["input"]), 1, height, facecolor=READ if hot else INPUT, edgecolor="0.3",
                                   lw=0.8, gid=f"read input {i}" if hot else f"input {i}"))
            ax.text(i + 0.5, rows["input"] + height / 2, str(i), ha="center", va="center", fontsize=8.5)
        # pooled cell p covers input pixels first..last; drawn across them, one pixel wide at stride 1
        centre = [(a + b + 1) / 2 for a, b in reads.cover]
        width = float(pool_stride)
        for p, x in enumerate(centre):
            hot = p in reads.pooled
            ax.add_patch(Rectangle((x - width / 2, rows["pooled"]), width, height, facecolor=FEATURES if hot else "white",
                                   edgecolor="0.3", lw=0.8, gid=f"read pooled {p}" if hot else f"pooled {p}"))
            ax.text(x, rows["pooled"] + height / 2, str(p), ha="center", va="center", fontsize=8)
            if hot:
                a, b = reads.cover[p]
                for i in range(a, b + 1):
                    ax.plot([x, i + 0.5], [rows["pooled"] + height, rows["input"]], color=READ, lw=1.2)
        # output o reads pooled cells o, o + dilation, ...: drawn centred under them
        span = (taps - 1) * dilation
        for o in range(reads.outputs):
            x = (centre[o] + centre[o + span]) / 2
            hot = o == reads.output
            ax.add_patch(Rectangle((x - width / 2, rows["output"]), width, height, facecolor=MARK if hot else "white",
                                   edgecolor="0.3", lw=0.8, gid="output" if hot else None))
            ax.text(x, rows["output"] + height / 2, str(o), ha="center", va="center", fontsize=8,
                    color="white" if hot else "black")
            if hot:
                for p in reads.pooled:
                    ax.plot([x, centre[p]], [rows["output"] + height, rows["pooled"]], color=MARK, lw=1.4)
        gaps = {int(centre[q] - centre[p]) for p, q in zip(reads.pooled, reads.pooled[1:])}
        gap = f"{gaps.pop()} pixels apart" if len(gaps) == 1 else "unevenly spaced"
        names = {"input": f"input ({length} pixels)",
                 "pooled": f"pooled, stride {pool_stride} ({len(centre)})",
                 "output": f"{taps}-tap kernel" + (f", dilation {dilation}" if dilation > 1 else "") + f" ({reads.outputs})"}
        for key, yy in rows.items():
            ax.text(-0.3, yy + height / 2, names[key], ha="right", va="center", fontsize=8.5)
        where = "inside a window" if dilation == 1 else "on the whole image"
        ax.set_title(f"{where}: output {reads.output} reads pooled cells {', '.join(map(str, reads.pooled))} "
                     f"(taps {gap}) = input pixels {reads.inputs[0]} to {reads.inputs[-1]}; "
                     f"{reads.outputs} outputs", fontsize=10, loc="left")
        ax.set_xlim(-5.2, length + 0.2)
        ax.set_ylim(-0.1, rows["input"] + height + 0.1)
        ax.set_aspect("equal")
        ax.axis("off")
    return axes
