"""The design diagrams draw what their networks and tensors are (course_utils/plotting/designs.py)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from course_utils.nets import SmallFCN  # noqa: E402
from course_utils.plotting.designs import (  # noqa: E402
    draw_fc_as_conv,
    draw_pooling_as_dilation,
    draw_three_designs,
    pooling_dilation_reads,
    stages,
)


def patch_classifier(window=9, width=6, classes=5):
    side = window - 2 * 2
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.ReLU(), nn.Conv2d(width, 2 * width, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * width * side * side, 16), nn.ReLU(), nn.Linear(16, classes))


def fc_decoder(side=16, classes=3):
    return nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(5 * (side // 2) ** 2, classes * side * side), nn.Unflatten(1, (classes, side, side)))


def boxes(ax, prefix):
    """The drawn rectangles whose gid starts with ``prefix``, by the rest of their gid."""
    return {p.get_gid()[len(prefix):].strip(): p for p in ax.patches if (p.get_gid() or "").startswith(prefix)}


def test_stages_are_the_shapes_of_running_the_layers_one_by_one():
    net = fc_decoder()
    x, expected = torch.zeros(1, 1, 16, 16), [(1, 16, 16)]
    for layer in net:  # the reference: apply the layers in turn, keep each new shape
        x = layer(x)
        if tuple(x.shape[1:]) != expected[-1]:
            expected.append(tuple(x.shape[1:]))
    got = stages(net, (1, 16, 16))
    assert [s.shape for s in got] == expected
    assert [s.name for s in got][1:] == ["conv 3×3", "max pool 2×2", "flatten", "fully connected", "reshape"]
    assert [type(m).__name__ for m in got[1].layers] == ["Conv2d", "ReLU"], "a ReLU joins the stage before it"


def test_stages_leave_batch_norm_statistics_and_training_mode_alone():
    net = SmallFCN(1, 4, width=4, depth=2).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    got = stages(net, (1, 32, 32))
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert [s.shape for s in got] == [(1, 32, 32), (8, 8, 8), (4, 8, 8), (4, 32, 32)]
    assert got[1].name == "6 × conv 3×3, 2 × max pool 2×2" and got[3].name == "upsample ×4"


def test_three_designs_draw_the_shapes_of_the_nets_passed_in():
    patch, fc, fcn = patch_classifier(window=9), fc_decoder(side=16), SmallFCN(1, 5, width=4, depth=2)
    axes = draw_three_designs(patch, 9, fc, (1, 16, 16), fcn, (1, 48, 48), field=20)
    window_shapes = [tuple(patch[:i + 1](torch.zeros(1, 1, 9, 9)).shape[1:]) for i in (0, 2, 4, 5, 7)]
    assert set(boxes(axes[0], "stage")) == {"1×9×9", *("×".join(f"{s:,}" for s in sh) for sh in window_shapes)}
    assert set(boxes(axes[1], "stage")) == {"1×16×16", "5×16×16", "5×8×8", "320", "768", "3×16×16"}
    assert set(boxes(axes[2], "stage")) == {"1×48×48", "8×12×12", "5×12×12", "5×48×48"}
    # maps are drawn to one scale: side proportional to H, and the field to scale on the input
    row3 = boxes(axes[2], "stage")
    assert row3["1×48×48"].get_height() == pytest.approx(4 * row3["8×12×12"].get_height())
    assert boxes(axes[1], "stage")["1×16×16"].get_height() == pytest.approx(row3["1×48×48"].get_height() / 3)
    assert boxes(axes[2], "field")["20×20"].get_height() == pytest.approx(row3["1×48×48"].get_height() * 20 / 48)
    image = boxes(axes[0], "image")["1×48×48"]
    assert boxes(axes[0], "window")["9×9"].get_height() == pytest.approx(image.get_height() * 9 / 48)
    assert f"{48 * 48:,}" in axes[0].get_title(loc="left") and "all 320 code entries" in axes[1].get_title(loc="left")
    plt.close("all")


@pytest.mark.parametrize("change, error, match", [
    (dict(window=8), ValueError, "odd"),
    (dict(fc_input=(1, 24, 24)), ValueError, "one input size"),
    (dict(fcn=nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.MaxPool2d(2))), ValueError, "forget to upsample"),
    (dict(image=(48, 48)), ValueError, r"shape \(C, H, W\)"),
    (dict(field=2.5), TypeError, "whole number"),
    (dict(patch_net="net"), TypeError, "torch.nn.Module"),
])
def test_three_designs_explain_bad_input(change, error, match):
    args = dict(patch_net=patch_classifier(window=9), window=9, fc_net=fc_decoder(16), fc_input=(1, 16, 16),
                fcn=SmallFCN(1, 5, width=4, depth=2), image=(1, 48, 48), field=20)
    with pytest.raises(error, match=match):
        draw_three_designs(**{**args, **change})
    plt.close("all")


def test_fc_as_conv_draws_the_layers_scores_of_every_window():
    torch.manual_seed(0)
    linear = nn.Linear(3 * 4 * 5, 7)
    big = torch.randn(3, 9, 11)
    ax = draw_fc_as_conv(linear, (3, 4, 5), big, row=5)
    drawn = torch.as_tensor(ax.images[-1].get_array().data)
    # the reference: cut out every 4x5 window of the map and apply the layer to it
    windows = big.unfold(1, 4, 1).unfold(2, 5, 1)  # (3, 6, 7, 4, 5)
    reference = linear(windows.permute(1, 2, 0, 3, 4).reshape(6 * 7, -1))[:, 5].reshape(6, 7)
    assert drawn.shape == (6, 7)
    assert torch.allclose(drawn, reference.detach(), atol=1e-5)
    kernel = [torch.as_tensor(im.get_array().data) for im in ax.images[:-1]]
    assert len(kernel) == 3 and torch.equal(kernel[1], linear.weight[5].detach().reshape(3, 4, 5)[1])
    assert {"score at 0,0", "score at 5,6"} <= {p.get_gid() for p in ax.patches}
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "3×9×11 map" in texts and "6×7 score map" in texts and "7×60 weights" in texts
    plt.close("all")


@pytest.mark.parametrize("args, error, match", [
    ((nn.Linear(60, 2), (3, 4, 4), torch.randn(3, 8, 8)), ValueError, "60 inputs.*holds 48"),
    ((nn.Linear(48, 2), (3, 4, 4), torch.randn(2, 8, 8)), ValueError, "3 channels"),
    ((nn.Linear(48, 2), (3, 4, 4), torch.randn(3, 3, 8)), ValueError, "at least 4x4"),
    ((nn.Conv2d(3, 2, 4), (3, 4, 4), torch.randn(3, 8, 8)), TypeError, "nn.Linear"),
    ((nn.Linear(48, 2), (3, 4, 4), torch.randn(3, 8, 8), 2), ValueError, "below the layer's 2 outputs"),
])
def test_fc_as_conv_explains_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        draw_fc_as_conv(*args)
    plt.close("all")


def read_by_gradient(length, taps, stride, output, dilated):
    """The reference: average pooling and a kernel of ones (so no path is cut), and the pixels and
    pooled cells whose gradient from one output is not zero; also the number of outputs."""
    x = torch.ones(1, 1, length, requires_grad=True)
    pooled = F.avg_pool1d(x, stride, 1 if dilated else stride)
    pooled.retain_grad()
    out = F.conv1d(pooled, torch.ones(1, 1, taps), dilation=stride if dilated else 1)
    out[0, 0, stride * output if dilated else output].backward()
    nonzero = lambda g: torch.nonzero(g[0, 0]).flatten().tolist()  # noqa: E731
    return nonzero(x.grad), nonzero(pooled.grad), out.shape[-1]


@pytest.mark.parametrize("length, taps, stride, output", [(16, 3, 2, 1), (16, 3, 2, 0), (20, 2, 3, 2), (13, 3, 2, 3)])
def test_dilated_kernel_reads_the_same_pixels_as_the_strided_one(length, taps, stride, output):
    strided, dilated = pooling_dilation_reads(length, taps, stride, output)
    for reads, is_dilated in ((strided, False), (dilated, True)):
        inputs, pooled, outputs = read_by_gradient(length, taps, stride, output, is_dilated)
        assert reads.inputs == inputs and reads.pooled == pooled and reads.outputs == outputs
    assert strided.inputs == dilated.inputs


def test_pooling_picture_marks_the_cells_one_output_reads():
    axes = draw_pooling_as_dilation(16, 3, 2, output=1)
    for ax, dilated in zip(axes, (False, True)):
        inputs, pooled, outputs = read_by_gradient(16, 3, 2, 1, dilated)
        assert sorted(int(k) for k in boxes(ax, "read input")) == inputs
        assert sorted(int(k) for k in boxes(ax, "read pooled")) == pooled
        assert f"{outputs} outputs" in ax.get_title(loc="left")
    plt.close("all")


@pytest.mark.parametrize("args, match", [
    ((16, 3, 2, 6), "below 6"), ((5, 3, 2, 0), "too few"), ((16, 0, 2, 0), "at least 1"),
])
def test_pooling_reads_explain_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        pooling_dilation_reads(*args)
