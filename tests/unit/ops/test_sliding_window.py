"""The sliding-window helpers (course_utils.ops) against explicit loops over pixels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.ops import (check_window, extract_windows, sample_windows,
                                         sliding_window_scores, windows_at)


def loop_window(images, n, i, j, P):
    """The window centred on (i, j), cut by hand from a zero-padded copy."""
    N, C, H, W = images.shape
    r = P // 2
    out = torch.zeros(C, P, P, dtype=images.dtype)
    for a in range(P):
        for b in range(P):
            y, x = i + a - r, j + b - r
            if 0 <= y < H and 0 <= x < W:
                out[:, a, b] = images[n, :, y, x]
    return out


def patch_net(C=2, P=5, K=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(C, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * (P - 2) ** 2, K)).double()


@pytest.mark.parametrize("P", [1, 3, 5])
def test_extract_windows_matches_a_loop_over_pixels(P):
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 2, 4, 6, generator=g, dtype=torch.float64)
    windows = extract_windows(images, P).view(2, 4, 6, 2, P, P)
    for n in range(2):
        for i in range(4):
            for j in range(6):
                torch.testing.assert_close(windows[n, i, j], loop_window(images, n, i, j, P), rtol=0, atol=0)


def test_windows_at_matches_extract_windows():
    g = torch.Generator().manual_seed(2)
    images = torch.randn(3, 1, 7, 5, generator=g)
    P = 5
    index = torch.tensor([[0, 0, 0], [2, 6, 4], [1, 3, 2], [2, 0, 4]])
    every = extract_windows(images, P).view(3, 7, 5, 1, P, P)
    got = windows_at(images, P, index)
    assert got.shape == (4, 1, P, P)
    for k, (n, i, j) in enumerate(index.tolist()):
        torch.testing.assert_close(got[k], every[n, i, j], rtol=0, atol=0)


def test_sample_windows_pairs_each_window_with_its_centre_label():
    g = torch.Generator().manual_seed(3)
    images = torch.randn(4, 1, 9, 9, generator=g)
    labels = (torch.rand(4, 9, 9, generator=g) < 0.2).long() * torch.randint(1, 5, (4, 9, 9), generator=g)
    data = sample_windows(images, labels, 7, 400, seed=0, foreground=0.5)
    windows, y = data.tensors
    assert windows.shape == (400, 1, 7, 7) and y.shape == (400,) and y.dtype == torch.int64
    assert int((y > 0).sum()) == 200, "half of the windows are centred on object pixels"
    # each window's centre pixel is the image value at a pixel that carries the paired label
    centre = windows[:, 0, 3, 3]
    for c, lab in zip(centre.tolist(), y.tolist()):
        where = torch.nonzero(images[:, 0] == c)
        assert any(int(labels[n, i, j]) == lab for n, i, j in where.tolist())
    again = sample_windows(images, labels, 7, 400, seed=0, foreground=0.5).tensors
    assert torch.equal(again[0], windows) and torch.equal(again[1], y)
    uniform = sample_windows(images, labels, 7, 4000, seed=1, foreground=None).tensors[1]
    assert abs(float((uniform > 0).double().mean()) - float((labels > 0).double().mean())) < 0.05


@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_sliding_window_scores_match_classifying_each_window_by_hand(batch_size):
    P, K = 5, 3
    net = patch_net(C=2, P=P, K=K)
    g = torch.Generator().manual_seed(4)
    images = torch.randn(2, 2, 4, 5, generator=g, dtype=torch.float64)
    scores = sliding_window_scores(net, images, P, batch_size=batch_size)
    assert scores.shape == (2, K, 4, 5)
    with torch.no_grad():
        for n in range(2):
            for i in range(4):
                for j in range(5):
                    expected = net(loop_window(images, n, i, j, P)[None])[0]
                    torch.testing.assert_close(scores[n, :, i, j], expected, rtol=1e-12, atol=1e-12)


def test_a_patch_classifier_made_of_one_linear_layer_is_a_cross_correlation():
    P, K = 3, 2
    lin = nn.Linear(P * P, K).double()
    net = nn.Sequential(nn.Flatten(), lin)
    g = torch.Generator().manual_seed(5)
    images = torch.randn(1, 1, 6, 6, generator=g, dtype=torch.float64)
    scores = sliding_window_scores(net, images, P, batch_size=None)
    expected = F.conv2d(images, lin.weight.view(K, 1, P, P), lin.bias, padding=P // 2)
    torch.testing.assert_close(scores, expected.detach())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="odd"):
        check_window(4)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        extract_windows(torch.zeros(5, 5), 3)
    with pytest.raises(TypeError, match="floating-point"):
        extract_windows(torch.zeros(1, 1, 5, 5, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="outside"):
        windows_at(torch.zeros(1, 1, 5, 5), 3, torch.tensor([[0, 5, 0]]))
    with pytest.raises(ValueError, match=r"labels must be integers of shape"):
        sample_windows(torch.zeros(2, 1, 5, 5), torch.zeros(2, 4, 5, dtype=torch.long), 3, 10)
    with pytest.raises(ValueError, match="no object pixels"):
        sample_windows(torch.zeros(2, 1, 5, 5), torch.zeros(2, 5, 5, dtype=torch.long), 3, 10, foreground=0.5)
