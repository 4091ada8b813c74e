"""Architecture diagrams drawn from the networks themselves (course_utils/plotting/architectures.py).

The references are the package's real networks, run on a zero image, with stand-ins for the pieces
that lab 4 asks for (a fusion, an unpooling, a decoder block) defined here, as the tests of the
networks do; the sizes are not the lab's, so nothing drawn can come from a default."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from course_utils.nets import FCN, Encoder, SegNetStyle, UNet  # noqa: E402
from course_utils.plotting.architectures import (  # noqa: E402
    draw_diagram, draw_unpooling, fcn_diagram, segnet_diagram, unet_diagram, unpooling_example,
)

WIDTHS, SIDE, K, HEAD = (3, 5, 6, 7, 9), 96, 4, 10


def drawn(ax, kind: str) -> dict[str, str]:
    """The texts the diagram drew with gid ``kind:<box name>``, by box name."""
    return {t.get_gid().split(":", 1)[1]: t.get_text() for t in ax.texts if (t.get_gid() or "").startswith(kind + ":")}


def label(shape) -> str:
    return "×".join(str(n) for n in shape)


def zeros():
    return torch.zeros(1, 1, SIDE, SIDE)


class AddFusion(nn.Module):
    """A fusion with the lab's interface: score the skip, resize the coarse scores to it, add."""

    def __init__(self, skip_channels, num_classes):
        super().__init__()
        self.score = nn.Conv2d(skip_channels, num_classes, 1)

    def forward(self, coarse, skip):
        return F.interpolate(coarse, size=skip.shape[-2:]) + self.score(skip)


class ConcatBlock(nn.Module):
    """A U-Net decoder block with the lab's interface: resize, concatenate the skip, convolve."""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1)

    def forward(self, x, skip):
        return self.conv(torch.cat([F.interpolate(x, size=skip.shape[-2:]), skip], dim=1))


def outputs_of(net, names):
    """Run ``net`` on a zero image; the output shape ``(C, H, W)`` of each named submodule, and of the net."""
    seen = {}

    def record(name):
        def hook(module, inputs, output):  # returns None, so that the output stays what it was
            seen[name] = tuple(output.shape[1:])
        return hook

    hooks = [getattr(net, n).register_forward_hook(record(n)) for n in names]
    with torch.no_grad():
        out = net.eval()(zeros())
    for h in hooks:
        h.remove()
    return seen, tuple(out.shape[1:])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_fcn_boxes_carry_the_shapes_of_the_real_encoder_and_fcns():
    ax = draw_diagram(fcn_diagram(WIDTHS, SIDE, num_classes=K, head_width=HEAD))
    shapes = drawn(ax, "shape")
    with torch.no_grad():
        pooled = Encoder(1, WIDTHS)(zeros()).pooled
    assert [shapes[f"pool{i + 1}"] for i in range(5)] == [label(p.shape[1:]) for p in pooled]
    assert shapes["image"] == label((1, SIDE, SIDE))
    fcn8 = FCN(K, 1, WIDTHS, HEAD, stride=8, fusion=AddFusion)
    inner, out8 = outputs_of(fcn8, ["head", "score", "fuse_pool4", "fuse_pool3"])
    _, out16 = outputs_of(FCN(K, 1, WIDTHS, HEAD, stride=16, fusion=AddFusion), [])
    _, out32 = outputs_of(FCN(K, 1, WIDTHS, HEAD, stride=32), [])
    assert shapes["fc6-fc7"] == label(inner["head"]) and shapes["score"] == label(inner["score"])
    assert shapes["+ stride 16"] == label(inner["fuse_pool4"]) and shapes["+ stride 8"] == label(inner["fuse_pool3"])
    assert [shapes["FCN-32s"], shapes["FCN-16s"], shapes["FCN-8s"]] == [label(out32), label(out16), label(out8)]
    names = drawn(ax, "name")
    assert [names[f"pool{i}"].splitlines()[-1] for i in (3, 4, 5)] == ["stride 8", "stride 16", "stride 32"]


@pytest.mark.parametrize("stride, fusion_strides", [(32, []), (16, [16]), (8, [16, 8])])
def test_an_fcn_of_stride_s_fuses_once_per_halving_of_32(stride, fusion_strides):
    d = fcn_diagram(WIDTHS, SIDE, stride, num_classes=K, head_width=HEAD)
    sums = [b.name for b in d.of_role("sum")]
    assert [d.stride(n) for n in sums] == fusion_strides
    ax = draw_diagram(d)
    assert len(drawn(ax, "sum")) == len(fusion_strides)
    assert [b.name for b in d.of_role("output")] == [f"FCN-{stride}s"]
    for n in sums:  # each fusion adds the scores of the skip at its own stride and a 2x upsampling
        into = {a.source: a for a in d.arrows if a.target == n}
        skip = f"score pool{int(np.log2(d.stride(n)))}"
        assert skip in into and len(into) == 2 and d.stride(skip) == d.stride(n)
        assert [a.label for s, a in into.items() if s != skip] == ["2× up"]


def test_segnet_switches_are_the_real_encoders_and_only_switches_cross():
    calls = []

    def unpool(values, switches, output_size):
        out = F.max_unpool2d(values, switches, 2, output_size=output_size)
        calls.append((tuple(values.shape[1:]), tuple(switches.shape[1:]), tuple(out.shape[1:])))
        return out

    _, out = outputs_of(SegNetStyle(K, 1, WIDTHS, unpool=unpool), [])
    d = segnet_diagram(WIDTHS, SIDE, num_classes=K)
    shapes = drawn(draw_diagram(d), "shape")
    calls = calls[::-1]  # the network unpools stage 5 first
    assert [shapes[f"switches {i + 1}"] for i in range(5)] == [label(c[1]) for c in calls]
    assert [shapes[f"unpooled {i + 1}"] for i in range(5)] == [label(c[2]) for c in calls]
    assert shapes["head"] == label(calls[-1][0]) and shapes["scores"] == label(out)
    with torch.no_grad():
        features = Encoder(1, WIDTHS)(zeros()).features
    assert [shapes[f"stage {i + 1}"] for i in range(5)] == [label(f.shape[1:]) for f in features]
    encoder_side = {n for n, b in d.boxes.items() if b.role in ("input", "encoder")}
    crossing = {(a.source, a.target, a.kind) for a in d.arrows
                if a.source in encoder_side and a.target not in encoder_side}
    assert crossing == {(f"stage {i}", f"switches {i}", "switches") for i in range(1, 6)} | {("pool5", "head", "layer")}


def test_unet_decoder_and_bridges_match_a_real_unet():
    skips = {}

    def record(k):
        def hook(module, inputs, output):  # (what the bridge brings, what the block returns)
            skips[k] = tuple(inputs[1].shape[1:]), tuple(output.shape[1:])
        return hook

    net = UNet(K, 1, WIDTHS, HEAD, block=ConcatBlock)
    hooks = [block.register_forward_hook(record(k)) for k, block in enumerate(net.decoder)]
    inner, out = outputs_of(net, ["bottleneck"])
    for h in hooks:
        h.remove()
    d = unet_diagram(WIDTHS, SIDE, num_classes=K, head_width=HEAD)
    shapes = drawn(draw_diagram(d), "shape")
    assert [shapes[f"decoder {k + 1}"] for k in range(5)] == [label(skips[k][1]) for k in range(5)]
    assert shapes["bottleneck"] == label(inner["bottleneck"]) and shapes["scores"] == label(out)
    bridges = [(a.source, a.target) for a in d.arrows if a.kind == "copy"]
    assert bridges == [(f"stage {k + 1}", f"decoder {k + 1}") for k in reversed(range(5))]
    assert all(shapes[src] == label(skips[int(src[-1]) - 1][0]) for src, _ in bridges), "a bridge copies a skip"


def test_unpooling_picture_puts_each_value_at_its_windows_argmax():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 8, generator=g) + 0.1  # positive, so that only the written cells are non-zero
    axes = draw_unpooling(x)
    cells = {}
    for ax in axes:
        for t in ax.texts:
            if (t.get_gid() or "").startswith("cell:"):
                _, panel, r, c = t.get_gid().split(":")
                cells.setdefault(panel, {})[int(r), int(c)] = t.get_text()
    windows = x.numpy().reshape(3, 2, 4, 2).transpose(0, 2, 1, 3).reshape(3, 4, 4)  # (window row, window col, 4)
    best = windows.argmax(-1)
    argmax = {(2 * i + best[i, j] // 2, 2 * j + best[i, j] % 2) for i in range(3) for j in range(4)}
    assert {rc for rc, text in cells["unpooled"].items() if text != "0"} == argmax
    assert all(float(cells["unpooled"][r, c]) == pytest.approx(float(x[r, c]), abs=0.006) for r, c in argmax)
    maxima = windows.max(-1)
    assert all(float(cells["pooled"][i, j]) == pytest.approx(maxima[i, j], abs=0.006)
               for i in range(3) for j in range(4))
    assert all(float(cells["nearest"][r, c]) == pytest.approx(maxima[r // 2, c // 2], abs=0.006)
               for r in range(6) for c in range(8))
    ex = unpooling_example(x)
    assert int((ex.unpooled != 0).sum()) == len(argmax) and int((ex.nearest != 0).sum()) == x.numel()


@pytest.mark.parametrize("make, error, match", [
    (lambda: fcn_diagram(WIDTHS, 60), ValueError, "multiple of 32"),
    (lambda: fcn_diagram(WIDTHS, 64, strides=4), ValueError, "strides among"),
    (lambda: fcn_diagram(WIDTHS, 64, strides=(8, 8)), ValueError, "without repeats"),
    (lambda: segnet_diagram((8, 16), 64), ValueError, "5 positive channel counts"),
    (lambda: unet_diagram(WIDTHS, 64.0), TypeError, "whole number"),
    (lambda: draw_diagram("fcn"), TypeError, "Diagram"),
    (lambda: draw_diagram(unet_diagram(WIDTHS, 64), ax="ax"), TypeError, "matplotlib Axes"),
    (lambda: unpooling_example(torch.zeros(1, 4, 4)), ValueError, r"\(H, W\)"),
    (lambda: unpooling_example(torch.zeros(3, 4)), ValueError, "even sides"),
    (lambda: unpooling_example(torch.zeros(4, 4, dtype=torch.long)), TypeError, "floating-point"),
    (lambda: draw_unpooling(torch.zeros(4, 4), plt.subplots(1, 3)[1]), TypeError, "four Axes"),
])
def test_bad_input_gets_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()
