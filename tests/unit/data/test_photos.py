"""The bundled photographs of chapter 3: offline, deterministic, split by photograph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.data.photos import (
    HELD_OUT_PHOTOS,
    TRAIN_PHOTOS,
    crop_to_multiple,
    downsample,
    photo,
    photo_patches,
    photos,
)


@pytest.mark.parametrize("name", TRAIN_PHOTOS + HELD_OUT_PHOTOS)
def test_every_photo_loads_offline_as_grey_float(name):
    # skimage.data raises for images it would have to download; these ship inside the package
    image = photo(name)
    assert image.dtype == torch.float32 and image.dim() == 2 and min(image.shape) >= 256
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert float(image.std()) > 0.02, "a photograph should not be flat"


def test_train_and_held_out_photos_are_disjoint():
    assert not set(TRAIN_PHOTOS) & set(HELD_OUT_PHOTOS)
    # chelsea and cat are the same photograph in scikit-image: only one of them may be used
    assert not {"cat", "chelsea"} <= set(TRAIN_PHOTOS + HELD_OUT_PHOTOS)
    assert set(photos("held_out")) == set(HELD_OUT_PHOTOS)


def test_patches_are_deterministic_and_come_from_their_split():
    a = photo_patches(12, 24, "held_out", seed=3)
    b = photo_patches(12, 24, "held_out", seed=3)
    c = photo_patches(12, 24, "held_out", seed=4)
    assert a.shape == (12, 1, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    # every patch is a crop (possibly mirrored) of one held-out photograph
    images = [photo(n).numpy() for n in HELD_OUT_PHOTOS]
    for patch in photo_patches(4, 16, "held_out", seed=5, flips=True)[:, 0].numpy():
        found = False
        for im in images:
            for p in (patch, patch[:, ::-1]):
                windows = np.lib.stride_tricks.sliding_window_view(im, p.shape)
                if np.any(np.all(windows == p, axis=(-1, -2))):
                    found = True
        assert found


def test_patch_arguments_are_checked():
    with pytest.raises(ValueError, match="split"):
        photo_patches(2, 8, "test")
    with pytest.raises(ValueError, match="larger"):
        photo_patches(2, 1000, "train")


def test_downsample_averages_blocks_and_checks_sizes():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(downsample(x, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    with pytest.raises(ValueError, match="multiples"):
        downsample(torch.zeros(1, 1, 5, 4), 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        downsample(torch.zeros(5, 4), 2)
    assert crop_to_multiple(torch.zeros(2, 1, 303, 384), 4).shape == (2, 1, 300, 384)
