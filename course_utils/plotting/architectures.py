"""Architecture diagrams drawn from the networks themselves: FCN-32s/16s/8s, SegNet-style, U-Net, unpooling.

Taught in {ref}`sec-recovering-resolution` (chapter 4). Every box is a tensor of one image, labelled
``C×H×W`` with the shape that the package's real :class:`~course_utils.nets.resolution.Encoder` (and,
for FCN-32s, the real :class:`~course_utils.nets.resolution.FCN`) produces on a zero image of the
given size: change the widths or the encoder and the drawing changes with them. A box's height grows
with its spatial side (on a log scale).

The pieces that lab 4 asks for (the skip fusion, unpooling, the U-Net decoder block) are not in the
package, so the tensors they make are drawn from the contracts that
:mod:`course_utils.nets.resolution` checks them against: a fusion returns ``K`` class scores on the
grid of its skip; an unpooling takes values of its switches' shape and fills the grid of the features
that were pooled; decoder block ``i`` of the U-Net returns ``widths[i]`` channels on the grid of stage
``i``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle

from .. import checks
from ..nets.resolution import FCN, FCN_STRIDES, NUM_STAGES, Encoder
from ..nets.small_fcn import bilinear_kernel
from .masks import PALETTE

ROLES = ("input", "encoder", "score", "sum", "switches", "decoder", "output")
KINDS = ("layer", "score", "up", "switches", "copy")


def _tint(colour, amount: float = 0.45):
    """``colour`` mixed with white, so that black text on it stays readable."""
    return tuple(amount * c + (1 - amount) for c in to_rgb(colour))


FILL = {"input": _tint(PALETTE[0], 0.8), "encoder": _tint(PALETTE[2]), "score": _tint(PALETTE[3]), "sum": "white",
        "switches": "white", "decoder": _tint(PALETTE[1]), "output": _tint(PALETTE[3])}
EDGE = {"switches": PALETTE[6]}
LINE = {  # arrow kind: (colour, line width, line style)
    "layer": ("0.3", 1.1, "-"), "score": (PALETTE[3], 1.3, "-"), "up": (PALETTE[1], 1.5, "-"),
    "switches": (PALETTE[6], 1.3, "--"), "copy": (PALETTE[5], 2.6, "-"),
}
SUM_RADIUS = 0.16
BOX_WIDTH = 0.95
INCHES_PER_UNIT = 0.8  # the layouts are in units of 1/0.8 inch, so that 8.5-point labels fit the boxes
SIDE = {  # where a label goes: (offset in inches, alignment)
    "above": ((0, 0.04), dict(ha="center", va="bottom")), "below": ((0, -0.04), dict(ha="center", va="top")),
    "left": ((-0.07, 0), dict(ha="right", va="center")), "right": ((0.07, 0), dict(ha="left", va="center")),
}


@dataclass(frozen=True)
class Box:
    """A tensor of the diagram: its ``shape`` ``(C, H, W)``, its ``role`` (one of :data:`ROLES`) and
    the centre ``(x, y)`` it is drawn at."""

    name: str
    shape: tuple
    role: str
    x: float
    y: float
    name_side: str = "above"
    caption: str = ""  # what is written next to the box, when it says more than the name

    @property
    def label(self) -> str:
        return "×".join(str(n) for n in self.shape)

    @property
    def size(self) -> tuple[float, float]:
        """Width and height; the height grows with the spatial side ``H``, on a log scale."""
        if self.role == "sum":
            return 2 * SUM_RADIUS, 2 * SUM_RADIUS
        return BOX_WIDTH, 0.2 + 0.08 * math.log2(self.shape[1])


@dataclass(frozen=True)
class Arrow:
    """What goes from one tensor to another: ``kind`` is one of :data:`KINDS`."""

    source: str
    target: str
    kind: str
    label: str = ""
    side: str = "above"


@dataclass
class Diagram:
    """Tensors (by name) and the arrows between them, for an image of side ``image_size``."""

    title: str
    image_size: int
    boxes: dict = field(default_factory=dict)
    arrows: list = field(default_factory=list)
    note: str = ""

    def add(self, name: str, shape, role: str, x: float, y: float, name_side: str = "above", caption: str = "") -> None:
        if role not in ROLES or name_side not in SIDE or len(shape) != 3:
            raise ValueError(f"a box needs a role among {ROLES}, a side among {tuple(SIDE)} and a shape (C, H, W); "
                             f"got {role!r}, {name_side!r}, {tuple(shape)}")
        self.boxes[name] = Box(name, tuple(int(n) for n in shape), role, x, y, name_side, caption)

    def link(self, source: str, target: str, kind: str = "layer", label: str = "", side: str = "above") -> None:
        if kind not in KINDS or side not in SIDE or source not in self.boxes or target not in self.boxes:
            raise ValueError(f"an arrow joins two boxes of the diagram, with a kind among {KINDS} and a side among "
                             f"{tuple(SIDE)}; got {source!r} -> {target!r}, {kind!r}, {side!r}")
        self.arrows.append(Arrow(source, target, kind, label, side))

    def of_role(self, role: str) -> list[Box]:
        return [b for b in self.boxes.values() if b.role == role]

    def stride(self, name: str) -> int:
        """How many pixels apart the tensor's positions are: the image side over its side."""
        return self.image_size // self.boxes[name].shape[1]


def _encoder_shapes(who: str, widths, image_size, in_channels: int):
    """The real encoder on a zero image: (features, pooled, switches) shapes ``(C, H, W)`` per stage,
    and the switches' dtype."""
    size = checks.integer(image_size, f"{who}: image_size", low=1)
    channels = checks.integer(in_channels, f"{who}: in_channels", low=1)
    deepest = 2**NUM_STAGES
    if size % deepest:
        raise ValueError(f"{who} draws the networks on images whose side is a multiple of {deepest} (the encoder's "
                         f"deepest stride, after {NUM_STAGES} poolings by 2), got image_size={size}")
    encoder = Encoder(channels, widths, return_indices=True).eval()  # it checks the widths itself
    with torch.no_grad():
        out = encoder(torch.zeros(1, channels, size, size))
    shapes = [[tuple(t.shape[1:]) for t in ts] for ts in (out.features, out.pooled, out.switches)]
    return (*shapes, str(out.switches[0].dtype).removeprefix("torch."))


def _strides(strides, who: str) -> tuple[int, ...]:
    strides = (strides,) if isinstance(strides, (int, np.integer)) else tuple(strides)
    if not strides or any(s not in FCN_STRIDES for s in strides) or len(set(strides)) != len(strides):
        raise ValueError(f"{who} draws FCN-32s, FCN-16s and FCN-8s: pass strides among {FCN_STRIDES} (one, or several "
                         f"without repeats), got {strides}")
    return tuple(sorted(strides, reverse=True))


def fcn_diagram(widths, image_size: int, strides=FCN_STRIDES, *, num_classes: int = 11, head_width: int = 64,
                in_channels: int = 1) -> Diagram:
    """FCN-32s, FCN-16s and FCN-8s (those of ``strides``) as one graph: the encoder's pool1 to pool5
    and fc6-fc7 in the top row, then one row per network, its skip scores, its ``+`` fusions and its
    final upsampling. Shapes come from a real FCN-32s on a zero image; the fusions' from their contract
    (``K`` scores on the skip's grid); the final upsampling is FCN's fixed bilinear one."""
    who = "fcn_diagram"
    strides = _strides(strides, who)
    _, pooled, _, _ = _encoder_shapes(who, widths, image_size, in_channels)
    k = checks.integer(num_classes, f"{who}: num_classes", low=1)
    fcn = FCN(k, in_channels, widths, checks.integer(head_width, f"{who}: head_width", low=1), stride=32).eval()
    with torch.no_grad():
        x = torch.zeros(1, in_channels, image_size, image_size)
        head = fcn.head(fcn.encoder(x).pooled[-1])
        score, out32 = fcn.score(head), fcn(x)

    def upsampled(shape, s):  # FCN's last step: a fixed bilinear transposed convolution, kernel 2s, stride s
        y = F.conv_transpose2d(torch.zeros(1, *shape), bilinear_kernel(2 * s, k), stride=s, padding=s // 2)
        return tuple(y.shape[1:])

    X, row = 1.25, {32: 0.0, 16: -1.2, 8: -2.4}
    d = Diagram("FCN-" + "s, FCN-".join(str(s) for s in strides) + "s", image_size,
                note="top row: two 3×3 convolutions and a 2×2 max pooling per arrow (into fc6-fc7: the "
                     "convolutions only); green: 1×1 score layers\n2× up: learned, bilinear at the start; "
                     "32×, 16×, 8× up: fixed bilinear")
    d.add("image", x.shape[1:], "input", 0, 0)
    previous = "image"
    for i, shape in enumerate(pooled):
        name = f"pool{i + 1}"
        d.add(name, shape, "encoder", (i + 1) * X, 0, caption=f"{name}\nstride {image_size // shape[1]}")
        d.link(previous, name)
        previous = name
    d.add("fc6-fc7", head.shape[1:], "encoder", 6 * X, 0, caption=f"fc6-fc7\nstride {image_size // head.shape[-1]}")
    d.link("pool5", "fc6-fc7")
    d.add("score", score.shape[1:], "score", 7 * X, 0, caption=f"score\nstride {image_size // score.shape[-1]}")
    d.link("fc6-fc7", "score", "score")
    if 32 in strides:
        assert tuple(out32.shape[1:]) == upsampled(score.shape[1:], 32), "FCN-32s upsamples as FCN.forward does"
        d.add("FCN-32s", out32.shape[1:], "output", 9.2 * X, row[32])
        d.link("score", "FCN-32s", "up", "32× up")
    coarse = "score"
    for t, skip_x in ((16, 5.5 * X), (8, 4.5 * X)):  # the skips: pool4 (stride 16), then pool3 (stride 8)
        if min(strides) > t:
            break
        stage = int(math.log2(t)) - 1  # pooled[stage] is at stride t
        scores = (k, *pooled[stage][1:])  # what a fusion must return: K scores on the skip's grid
        skip, fused = f"score pool{stage + 1}", f"+ stride {t}"
        d.add(skip, scores, "score", skip_x, row[t], "below")
        d.link(f"pool{stage + 1}", skip, "score", "1×1", "right")
        d.add(fused, scores, "sum", 8 * X, row[t])
        d.link(coarse, fused, "up", "2× up", "right")
        d.link(skip, fused, "score")
        if t in strides:
            d.add(f"FCN-{t}s", upsampled(scores, t), "output", 9.2 * X, row[t])
            d.link(fused, f"FCN-{t}s", "up", f"{t}× up")
        coarse = fused
    return d


def _mirror_layout(dy: float = 0.95):
    """Centres of a U: the encoder column on the left going down, the decoder on the right going up."""
    indent, gap, x0 = 0.58, 2.2, 1.4
    left = lambda level: (x0 + indent * level, -dy * level)  # noqa: E731
    right = lambda level: (x0 + gap + 2 * indent * NUM_STAGES - indent * level, -dy * level)  # noqa: E731
    return left, right


def _contracting(d: Diagram, features, in_channels: int, left) -> str:
    """The image and the encoder's stages down the left of a U; returns the deepest stage's name."""
    d.add("image", (in_channels, d.image_size, d.image_size), "input", left(0)[0] - 1.6, 0)
    previous = "image"
    for i, shape in enumerate(features):
        d.add(f"stage {i + 1}", shape, "encoder", *left(i), "above" if i == 0 else "left")
        label, side = ("conv×2", "above") if i == 0 else ("pool, conv×2", "right")
        d.link(previous, f"stage {i + 1}", label=label, side=side)
        previous = f"stage {i + 1}"
    return previous


def segnet_diagram(widths, image_size: int, *, num_classes: int = 11, in_channels: int = 1) -> Diagram:
    """The SegNet-style mirror: the encoder's stages going down, the decoder coming back up through the
    same shapes, and each pooling's switches (from the real encoder) passed across to its unpooling.
    Nothing else crosses: no feature map goes from the encoder to the decoder."""
    who = "segnet_diagram"
    features, pooled, switches, dtype = _encoder_shapes(who, widths, image_size, in_channels)
    k = checks.integer(num_classes, f"{who}: num_classes", low=1)
    left, right = _mirror_layout()
    d = Diagram("SegNet-style: the switches cross, no features do", image_size,
                note="down: 2×2 max pooling records its switches; up: unpooling writes each value at its switch")
    deepest = _contracting(d, features, in_channels, left)
    d.add("pool5", pooled[-1], "encoder", *left(NUM_STAGES), "left")
    d.link(deepest, "pool5", label="pool", side="right")
    # an unpooling takes values of its switches' shape, so the head keeps pool5's shape
    d.add("head", switches[-1], "decoder", *right(NUM_STAGES), "right")
    d.link("pool5", "head", label="conv×2")
    previous = "head"
    for i in reversed(range(NUM_STAGES)):
        sw, unpooled = f"switches {i + 1}", f"unpooled {i + 1}"
        d.add(sw, switches[i], "switches", (left(i)[0] + right(i)[0]) / 2, (left(i)[1] + left(i + 1)[1]) / 2)
        d.add(unpooled, (switches[i][0], *features[i][1:]), "decoder", *right(i), "above" if i == 0 else "right")
        d.link(f"stage {i + 1}", sw, "switches", f"switches ({dtype})" if i == 0 else "")
        d.link(sw, unpooled, "switches")
        d.link(previous, unpooled, "up", "unpool" if i == NUM_STAGES - 1 else "conv×2, unpool", "left")
        previous = unpooled
    d.add("scores", (k, *features[0][1:]), "output", right(0)[0] + 2.05, 0)
    d.link(previous, "scores", "score", "conv×2, 1×1")
    return d


def unet_diagram(widths, image_size: int, *, num_classes: int = 11, head_width: int = 64,
                 in_channels: int = 1) -> Diagram:
    """The U-Net's U: the contracting path down, a bottleneck at the deepest stride, the expanding path
    up, and at every level a bridge that copies the encoder's features across to be concatenated."""
    who = "unet_diagram"
    features, pooled, _, _ = _encoder_shapes(who, widths, image_size, in_channels)
    k = checks.integer(num_classes, f"{who}: num_classes", low=1)
    head = checks.integer(head_width, f"{who}: head_width", low=1)
    left, right = _mirror_layout()
    d = Diagram("U-Net: copy and concatenate at every scale", image_size,
                note="up: each decoder block upsamples 2×, concatenates the copied features and convolves twice")
    deepest = _contracting(d, features, in_channels, left)
    bottom = (left(NUM_STAGES)[0] + right(NUM_STAGES)[0]) / 2, left(NUM_STAGES)[1]
    d.add("bottleneck", (head, *pooled[-1][1:]), "encoder", *bottom, "below")
    d.link(deepest, "bottleneck", label="pool, conv×2", side="right")
    previous = "bottleneck"
    for i in reversed(range(NUM_STAGES)):
        block = f"decoder {i + 1}"
        # decoder block i returns widths[i] channels on stage i's grid (UNet.forward checks it)
        d.add(block, features[i], "decoder", *right(i), "above" if i == 0 else "right")
        d.link(previous, block, "up", "2× up", "right" if previous == "bottleneck" else "left")
        d.link(f"stage {i + 1}", block, "copy", "copy, concatenate")
        previous = block
    d.add("scores", (k, *features[0][1:]), "output", right(0)[0] + 2.05, 0)
    d.link(previous, "scores", "score", "1×1")
    return d


def _anchor(box: Box, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre to ``toward`` leaves the box."""
    dx, dy = toward[0] - box.x, toward[1] - box.y
    if dx == dy == 0:
        return box.x, box.y
    if box.role == "sum":
        n = math.hypot(dx, dy)
        return box.x + SUM_RADIUS * dx / n, box.y + SUM_RADIUS * dy / n
    w, h = box.size
    t = min(w / 2 / abs(dx) if dx else math.inf, h / 2 / abs(dy) if dy else math.inf)
    return box.x + t * dx, box.y + t * dy


def _checked(ax, who: str):
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"{who} draws into a matplotlib Axes (e.g. from plt.subplots()) or, with ax=None, into a new "
                        f"figure; got {checks.describe(ax)}")
    return ax


def draw_diagram(diagram: Diagram, ax=None):
    """Draw a :class:`Diagram`: a box per tensor (name above, ``C×H×W`` inside), ``+`` circles for
    the fusions, arrows coloured by kind (layers grey, score layers green, upsampling orange,
    switches dashed red, copied features thick blue). Returns the axes."""
    if not isinstance(diagram, Diagram):
        raise TypeError(f"draw_diagram expects a Diagram (from fcn_diagram, segnet_diagram or unet_diagram), "
                        f"got {checks.describe(diagram)}")
    boxes = diagram.boxes.values()
    x0 = min(b.x - b.size[0] / 2 - (0.6 if b.name_side == "left" else 0) for b in boxes) - 0.2
    x1 = max(b.x + b.size[0] / 2 + (0.75 if b.name_side == "right" else 0) for b in boxes) + 0.2
    lines = diagram.note.count("\n") + 1 if diagram.note else 0
    y0 = min(b.y - b.size[1] / 2 - (0.22 if b.name_side == "below" else 0) for b in boxes) - 0.3 - 0.17 * lines
    y1 = max(b.y + b.size[1] / 2 + 0.16 * (b.caption or b.name).count("\n") for b in boxes) + 0.32
    if _checked(ax, "draw_diagram") is None:
        width, height = INCHES_PER_UNIT * (x1 - x0), INCHES_PER_UNIT * (y1 - y0) + 0.35
        fig, ax = plt.subplots(figsize=(width, height))
        fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - 0.35 / height)
    for a in diagram.arrows:
        src, dst = diagram.boxes[a.source], diagram.boxes[a.target]
        start, end = _anchor(src, (dst.x, dst.y)), _anchor(dst, (src.x, src.y))
        colour, lw, style = LINE[a.kind]
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color=colour, lw=lw,
                                     linestyle=style, shrinkA=1, shrinkB=1, zorder=1,
                                     gid=f"arrow:{a.source}->{a.target}"))
        if a.label:
            (dx, dy), align = SIDE[a.side]
            ax.text((start[0] + end[0]) / 2 + dx, (start[1] + end[1]) / 2 + dy, a.label, fontsize=8, color="0.2",
                    zorder=4, bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85),
                    gid=f"label:{a.source}->{a.target}", **align)
    for b in boxes:
        w, h = b.size
        if b.role == "sum":
            ax.add_patch(Circle((b.x, b.y), SUM_RADIUS, fc="white", ec="0.2", lw=1, zorder=2))
            ax.text(b.x, b.y, "+", ha="center", va="center", fontsize=11, zorder=3, gid=f"sum:{b.name}")
            ax.text(b.x - 0.06, b.y - SUM_RADIUS, b.label, ha="right", va="top", fontsize=8.5, zorder=3,
                    gid=f"shape:{b.name}")
            continue
        dashed = b.role == "switches"
        ax.add_patch(Rectangle((b.x - w / 2, b.y - h / 2), w, h, fc=FILL[b.role], ec=EDGE.get(b.role, "0.2"),
                               lw=1.2 if dashed else 0.8, linestyle="--" if dashed else "-", zorder=2))
        ax.text(b.x, b.y, b.label, ha="center", va="center", fontsize=8.5, zorder=3, gid=f"shape:{b.name}")
        (dx, dy), align = SIDE[b.name_side]
        ax.text(b.x + dx + np.sign(dx) * w / 2, b.y + dy + np.sign(dy) * h / 2, b.caption or b.name, fontsize=8.5,
                zorder=3, fontweight="bold" if b.role == "output" else "normal", gid=f"name:{b.name}", **align)
    if diagram.note:
        ax.text(x0 + 0.05, y0 + 0.05, diagram.note + ". Box height: the spatial side (log scale)",
                fontsize=8, color="0.35", ha="left", va="bottom")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(diagram.title, fontsize=11)
    return ax


@dataclass(frozen=True)
class UnpoolingExample:
    """One map ``image`` ``(H, W)``, its 2x2 max pooling ``pooled`` with the flat positions of the maxima
    ``switches`` (as ``F.max_pool2d(..., return_indices=True)`` gives them), the max-unpooling of
    ``pooled`` at the switches, and the nearest-neighbour upsampling of ``pooled``, both ``(H, W)``."""

    image: torch.Tensor
    pooled: torch.Tensor
    switches: torch.Tensor
    unpooled: torch.Tensor
    nearest: torch.Tensor


def unpooling_example(x) -> UnpoolingExample:
    """Pool a small float map ``x`` ``(H, W)`` (even sides, at most 8) by 2x2, unpool it at the switches
    and upsample it by nearest neighbours, with torch's own functions."""
    x = checks.tensor(x, "unpooling_example", ndim=2, layout="(H, W)", kind="float", hint="use .float()")
    h, w = x.shape
    if h % 2 or w % 2 or not (2 <= h <= 8 and 2 <= w <= 8):
        raise ValueError(f"unpooling_example prints every value in its cell, so it takes a small map with even sides "
                         f"(2 to 8) for its 2x2 windows, got a map of {h}×{w}")
    x = x.detach().cpu()
    pooled, switches = F.max_pool2d(x[None, None], 2, return_indices=True)
    with warnings.catch_warnings():  # torch warns that unpooling is not deterministic in general; with
        warnings.simplefilter("ignore")  # non-overlapping windows no two values share a switch
        unpooled = F.max_unpool2d(pooled, switches, 2, output_size=(h, w))
    nearest = F.interpolate(pooled, scale_factor=2, mode="nearest")
    return UnpoolingExample(x, pooled[0, 0], switches[0, 0], unpooled[0, 0], nearest[0, 0])


def _value(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.2f}"


def _grid(ax, values, panel: str, title: str, fill, faded=None, notes=None, windows: bool = True):
    """One map as a grid of cells with its values printed; ``fill`` ``(H, W)`` colours, ``faded``
    cells (zeros nobody wrote) in grey text, ``notes`` small text under a value."""
    h, w = values.shape
    scale = 4 / max(4, 2 * h, 2 * w) if panel == "pooled" else 4 / max(4, h, w)  # the fonts fit 4 cells a side
    for r in range(h):
        for c in range(w):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fc=fill[r][c], ec="0.6", lw=0.6))
            grey = faded is not None and faded[r][c]
            ax.text(c, r - (0.12 if notes else 0), _value(float(values[r, c])), ha="center", va="center",
                    fontsize=13 * scale, color="0.6" if grey else "black", gid=f"cell:{panel}:{r}:{c}")
            if notes:
                ax.text(c, r + 0.25, notes[r][c], ha="center", va="center", fontsize=7.5 * scale, color="0.25")
    if windows:  # the 2x2 pooling windows
        for r in range(0, h + 1, 2):
            ax.plot([-0.5, w - 0.5], [r - 0.5, r - 0.5], color="0.15", lw=1.8)
        for c in range(0, w + 1, 2):
            ax.plot([c - 0.5, c - 0.5], [-0.5, h - 0.5], color="0.15", lw=1.8)
    ax.set_xlim(-0.55, w - 0.45)
    ax.set_ylim(h - 0.45, -0.55)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def draw_unpooling(x, axes=None):
    """Four panels for one small map ``x`` ``(H, W)`` (see :func:`unpooling_example`): the map with its
    2x2 windows and each window's maximum marked; the pooled values with their switches; max-unpooling,
    which writes each value back at its switch and zeros elsewhere; nearest-neighbour upsampling of the
    same values, which copies each value into its whole window. ``axes``: four Axes, or ``None`` (the
    default) for a new figure. Returns the axes."""
    ex = unpooling_example(x)
    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(10.5, 3.0), gridspec_kw=dict(width_ratios=[2, 1.3, 2, 2], wspace=0.25))
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != 4 or not all(isinstance(a, Axes) for a in axes):
        raise TypeError(f"draw_unpooling draws four panels: pass four Axes (plt.subplots(1, 4)[1]) or None, "
                        f"got {checks.describe(axes)} of {len(axes)}")
    h, w = ex.image.shape
    at_switch = np.zeros((h, w), dtype=bool)
    at_switch.flat[ex.switches.flatten().numpy()] = True
    marked, plain, copied = _tint(PALETTE[1], 0.6), "white", _tint(PALETTE[2], 0.45)
    fill = [[marked if at_switch[r, c] else plain for c in range(w)] for r in range(h)]
    _grid(axes[0], ex.image, "input", f"input {h}×{w}\nwindow maxima marked", fill)
    sw = ex.switches.numpy()
    notes = [[f"switch {sw[r, c]}\n= ({sw[r, c] // w}, {sw[r, c] % w})" for c in range(w // 2)] for r in range(h // 2)]
    _grid(axes[1], ex.pooled, "pooled", f"max pooled {h // 2}×{w // 2}\nswitch = (row, col)",
          [[marked] * (w // 2)] * (h // 2), notes=notes, windows=False)
    _grid(axes[2], ex.unpooled, "unpooled", "max-unpooled\nat the switches, 0 elsewhere", fill, faded=~at_switch)
    _grid(axes[3], ex.nearest, "nearest", "nearest upsampling\ncopied into the window", [[copied] * w] * h)
    return axes
