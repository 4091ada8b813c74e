"""The checks students meet (course_utils/checks.py): each names what it expected, what came, and
the likely cause."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_utils import checks


def test_a_tensor_of_the_wrong_kind_shape_or_type_is_named_with_its_likely_cause():
    with pytest.raises(TypeError, match=r"got a NumPy float64 array of shape \(2, 3\) \(convert it with torch.from_numpy\)"):
        checks.tensor(np.zeros((2, 3)), "f", ndim=2)
    with pytest.raises(ValueError, match=r"expects a tensor of shape \(N, C, H, W\), got a float32 tensor of shape \(1, 5, 5\); "
                                         r"a single one\? add the batch dimension with x\[None\] \(shape \(1, 1, 5, 5\)\)"):
        checks.tensor(torch.zeros(1, 5, 5), "f", ndim=4, layout="(N, C, H, W)")
    with pytest.raises(TypeError, match="expects an integer tensor, got a float32 tensor"):
        checks.tensor(torch.zeros(3), "f", kind="integer")
    assert checks.tensor(torch.zeros(2, dtype=torch.long), "f", ndim=1, kind="integer").shape == (2,)


def test_images_labels_and_pairs():
    with pytest.raises(ValueError, match="3 channels"):
        checks.images(torch.zeros(2, 1, 4, 4), "net", channels=3)
    with pytest.raises(ValueError, match="multiples of 32"):
        checks.images(torch.zeros(2, 1, 48, 40), "net", multiple=32)
    with pytest.raises(TypeError, match=r"argmax\(dim=1\)"):
        checks.labels(torch.zeros(2, 4, 4), "loss")
    with pytest.raises(ValueError, match=r"need labels of shape \(2, 4, 4\)"):
        checks.labels(torch.zeros(2, 5, 5, dtype=torch.long), "loss", like=torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"argmax\(dim=1\) for a batch of scores"):
        checks.pair(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "iou", "integer")


def test_masks_and_whole_numbers():
    with pytest.raises(TypeError, match=r"scores.argmax\(dim=1\) == 1"):
        checks.numpy_mask(np.zeros((4, 4)), "label_blobs")
    assert checks.numpy_mask(torch.tensor([[0, 2], [1, 0]]), "m").tolist() == [[False, True], [True, False]]
    with pytest.raises(TypeError, match=r"whole number, got a float \(2.5\)"):
        checks.integer(2.5, "factor")
    with pytest.raises(ValueError, match="at least 1"):
        checks.integer(0, "factor", low=1)
    assert checks.integer(np.int64(3), "factor") == 3 and checks.integer(torch.tensor(4), "factor") == 4


def stub(scores, labels):
    """Return the mean loss."""
    ...


def passes(x):
    pass


def written(x):
    return x + 1


class StubNet(torch.nn.Module):
    def forward(self, x):
        ...


class Net(torch.nn.Module):
    def forward(self, x):
        return x


def test_unwritten_answers_are_the_hand_out_placeholders_only():
    assert all(checks._unwritten(a) for a in (..., stub, passes, StubNet, StubNet().forward))
    assert not any(checks._unwritten(a) for a in (written, Net, Net().forward, 0, None, torch.zeros(2), len, lambda x: x))


def test_answered_prints_which_question_to_finish_and_says_whether_to_run(capsys):
    assert checks.answered("Question 2", written, Net, 3.0)
    assert capsys.readouterr().out == ""
    assert not checks.answered("Question 2", written, stub)
    out = capsys.readouterr().out
    assert out.strip() == ("skipped: this cell needs `stub` from Question 2, which is not written yet; "
                           "finish it first, then run this cell again")
    assert not checks.answered("Questions 3 and 4", written, StubNet, passes, ...)
    assert capsys.readouterr().out.strip() == (
        "skipped: this cell needs `StubNet`, `passes` and an answer from Questions 3 and 4, which are not written yet; "
        "finish them first, then run this cell again")


def test_device_accepts_this_machines_devices_and_explains_the_others(monkeypatch):
    assert checks.device("cpu", "fit") == torch.device("cpu")
    assert checks.device(torch.device("cpu"), "fit") == torch.device("cpu")
    with pytest.raises(TypeError, match=r"fit expects a device .*got a str \('gpu'\)"):
        checks.device("gpu", "fit")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        checks.device("cuda:0", "fit")
