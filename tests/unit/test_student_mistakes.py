"""The mistakes students make with the course's helpers, and the message each one gets.

One row per mistake seen when a student's lab day was tried (issue 16): every message names what
was expected, what came, and the likely fix, and no figure is left half drawn.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from course_utils.data import digit_scenes  # noqa: E402
from course_utils.nets import SmallFCN, bilinear_kernel, fit, predict  # noqa: E402
from course_utils.plotting import show_mask, show_scenes  # noqa: E402

SCENES = digit_scenes(4, 32, split="train", seed=0)


def net(classes=11):
    return SmallFCN(1, classes, width=4, depth=1)


class NoReturn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 11, 1)

    def forward(self, x):
        self.conv(x)  # forgot the return


def axes():
    return plt.subplots()[1]


MISTAKES = {
    "show_scenes without class names": (
        lambda: show_scenes(SCENES.images, SCENES.labels),
        TypeError, r"needs class_names, one name per class .*scenes\.class_names"),
    "show_scenes with one mask, no batch dimension": (
        lambda: show_scenes(SCENES.images[0], SCENES.labels[0], SCENES.class_names),
        ValueError, r"masks of shape \(N, H, W\), got an int64 tensor of shape \(32, 32\); .*masks\[None\]"),
    "show_scenes with scores as predictions": (
        lambda: show_scenes(SCENES.images, SCENES.labels, SCENES.class_names, predictions=torch.randn(4, 11, 32, 32)),
        ValueError, r"predictions\.argmax\(dim=1\)"),
    "show_mask with one image's float scores": (
        lambda: show_mask(axes(), torch.randn(11, 32, 32), SCENES.class_names),
        TypeError, r"scores\.argmax\(dim=0\) \(for a batch \(N, C, H, W\): scores\.argmax\(dim=1\)\[i\]\)"),
    "show_mask on a figure instead of axes": (
        lambda: show_mask(plt.figure(), SCENES.labels[0], SCENES.class_names),
        TypeError, r"draws on the axes ax \(fig, ax = plt\.subplots\(\)\), got a Figure"),
    "show_mask with one row of a mask": (
        lambda: show_mask(axes(), SCENES.labels[0, 0], SCENES.class_names),
        ValueError, r"got an int64 tensor of shape \(32,\); a mask has two dimensions"),
    "predict on a NumPy array": (
        lambda: predict(net(), SCENES.images.numpy(), "cpu"),
        TypeError, r"expects a torch tensor \(N, C, H, W\), got a NumPy float32 array .*torch\.from_numpy"),
    "predict on one image": (
        lambda: predict(net(), SCENES.images[0], "cpu"),
        ValueError, r"got a float32 tensor of shape \(1, 32, 32\); a single one\? add the batch dimension with x\[None\] \(shape \(1, 1, 32, 32\)\)$"),
    "fit on a tuple of tensors": (
        lambda: fit(net(), (SCENES.images, SCENES.labels), epochs=1, progress=False),
        TypeError, r"a Dataset of \(input, target\) pairs, got a tuple .*TensorDataset\(images, labels\)"),
    "fit with too few output classes": (
        lambda: fit(net(classes=3), SCENES, epochs=1, progress=False),
        ValueError, r"scores only 3 classes .*one output per class, at least \d+"),
    "fit with int32 labels": (
        lambda: fit(net(), TensorDataset(SCENES.images, SCENES.labels.int()), epochs=1, progress=False),
        TypeError, r"int32 .*int64 \(torch\.long\): convert them with labels\.long\(\)"),
    "fit with a forward that returns nothing": (
        lambda: fit(NoReturn(), SCENES, epochs=1, progress=False),
        TypeError, r"returned None, not a tensor of scores: does its forward\(\) end with a return\?"),
    "bilinear_kernel(2.5)": (
        lambda: bilinear_kernel(2.5),
        TypeError, r"size must be a whole number, got a float \(2\.5\)"),
    "digit_scenes too small to hold a digit": (
        lambda: digit_scenes(2, 6, split="train"),
        ValueError, r"6x6 pixels cannot hold a digit: .*smallest digit is 16x16"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_gets_a_message_that_names_the_fix(mistake):
    call, error, message = MISTAKES[mistake]
    plt.close("all")
    with pytest.raises(error, match=message):
        call()
    # checked before drawing: at most the axes the call was handed, never a half-drawn grid
    assert all(len(plt.figure(n).axes) <= 1 for n in plt.get_fignums())
    plt.close("all")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_points_at_the_setup_device():
    with pytest.raises(ValueError, match=r"device 'cuda' needs a CUDA GPU, .*pass the `device` the setup cell chose"):
        fit(net(), SCENES, epochs=1, device="cuda", progress=False)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        predict(net(), SCENES.images, "cuda")
