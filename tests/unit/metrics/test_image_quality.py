"""PSNR and the checkerboard measure (course_utils/metrics/image_quality.py), checked against
scikit-image and against constructed images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.metrics import checkerboard_score, phase_means, psnr


def test_psnr_matches_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 20, 30, generator=g)
    noisy = (target + 0.05 * torch.randn(2, 1, 20, 30, generator=g)).clamp(0, 1)
    expected = peak_signal_noise_ratio(target.numpy().astype(np.float64), noisy.numpy().astype(np.float64), data_range=1.0)
    assert math.isclose(psnr(noisy, target), expected, rel_tol=1e-9)
    inner = peak_signal_noise_ratio(target[..., 3:-3, 3:-3].double().numpy(), noisy[..., 3:-3, 3:-3].double().numpy(),
                                    data_range=1.0)
    assert math.isclose(psnr(noisy, target, border=3), inner, rel_tol=1e-9)
    assert psnr(target, target) == math.inf


def test_psnr_clamps_and_checks_shapes():
    target = torch.full((1, 1, 8, 8), 1.0)
    assert psnr(target + 0.5, target) == math.inf  # clipped to the valid range first
    assert math.isclose(psnr(target + 0.5, target, clamp=False), 10 * math.log10(1 / 0.25))
    with pytest.raises(ValueError, match="upsample"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 8, 8))


def test_checkerboard_score_is_zero_for_flat_and_large_for_periodic_images():
    flat = torch.full((1, 1, 32, 32), 0.7)
    assert checkerboard_score(flat, 2) < 1e-12
    # the response of a random stride-2, kernel-3 transposed convolution to a constant image
    g = torch.Generator().manual_seed(0)
    y = F.conv_transpose2d(torch.ones(1, 1, 16, 16), torch.rand(1, 1, 3, 3, generator=g), stride=2, padding=1,
                           output_padding=1)
    assert checkerboard_score(y, 2) > 0.1
    pattern = torch.tensor([[1.0, 3.0], [3.0, 1.0]]).repeat(8, 8)
    means = phase_means(pattern, 2)
    torch.testing.assert_close(means, torch.tensor([[1.0, 3.0], [3.0, 1.0]], dtype=torch.float64))
    assert math.isclose(checkerboard_score(pattern, 2), 0.5)
