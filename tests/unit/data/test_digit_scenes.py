"""Digit scenes (course_utils.data.digit_scenes): deterministic, split by source digit, and with
labels, instance maps, centres and points that agree with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.datasets import load_digits

from course_utils.data import CLASS_NAMES, NUM_CLASSES, compose_scenes, digit_scenes, digit_split, handwritten_glyphs
from course_utils.data.digit_scenes import INK_THRESHOLD


@pytest.fixture(scope="module")
def scenes():
    return digit_scenes(24, 48, split="train", seed=3)


def test_same_arguments_give_identical_arrays_and_another_seed_does_not():
    a = digit_scenes(6, 40, split="test", seed=5)
    b = digit_scenes(6, 40, split="test", seed=5)
    for name in ("images", "labels", "instances"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("centres", "points", "digits", "sources"):
        for x, y in zip(getattr(a, name), getattr(b, name)):
            np.testing.assert_array_equal(x, y)
    c = digit_scenes(6, 40, split="test", seed=6)
    assert not torch.equal(a.images, c.images)


def test_fewer_scenes_are_the_first_scenes_of_a_longer_run():
    short, long = digit_scenes(3, 32, seed=2), digit_scenes(8, 32, seed=2)
    assert torch.equal(short.images, long.images[:3])
    assert torch.equal(short.labels, long.labels[:3])


def test_train_and_test_use_the_same_seed_differently():
    train, test = digit_scenes(4, 32, split="train", seed=0), digit_scenes(4, 32, split="test", seed=0)
    assert not torch.equal(train.images, test.images)


def test_split_is_by_source_digit_fixed_disjoint_and_complete():
    train, test = digit_split("train"), digit_split("test")
    n = len(load_digits().target)
    assert len(train) + len(test) == n == 1797
    assert not set(train.tolist()) & set(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(n))
    np.testing.assert_array_equal(train, digit_split("train"))  # fixed once for the course
    assert len(test) == round(0.3 * n)


def test_scenes_only_use_digits_of_their_own_split():
    bank = load_digits()
    for split in ("train", "test"):
        allowed = set(digit_split(split).tolist())
        s = digit_scenes(30, 64, split=split, seed=1)
        used = {int(g) for src in s.sources for g in src}
        assert used and used <= allowed, f"{split} scenes use digits outside the {split} split"
        for src, dig in zip(s.sources, s.digits):  # sources index the full scikit-learn bank
            np.testing.assert_array_equal(bank.target[src], dig)


def test_glyphs_of_a_split_are_the_bundled_scans():
    glyphs, classes = handwritten_glyphs("test")
    bank = load_digits()
    idx = digit_split("test")
    np.testing.assert_allclose(glyphs, bank.images[idx] / 16.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(classes, bank.target[idx])


def test_shapes_and_dtypes(scenes):
    assert scenes.images.shape == (24, 1, 48, 48) and scenes.images.dtype == torch.float32
    assert scenes.labels.shape == (24, 48, 48) and scenes.labels.dtype == torch.int64
    assert scenes.instances.shape == (24, 48, 48) and scenes.instances.dtype == torch.int64
    assert len(scenes) == 24 and len(scenes.centres) == len(scenes.points) == len(scenes.digits) == 24
    x, y = scenes[5]
    assert x.shape == (1, 48, 48) and y.shape == (48, 48)
    assert scenes.num_classes == NUM_CLASSES == len(CLASS_NAMES) == 11
    assert int(scenes.labels.min()) >= 0 and int(scenes.labels.max()) < NUM_CLASSES


def test_non_square_scenes():
    s = digit_scenes(3, (32, 56), seed=0)
    assert s.images.shape == (3, 1, 32, 56) and s.labels.shape == (3, 32, 56)


def test_images_are_roughly_standardised(scenes):
    mean, std = float(scenes.images.mean()), float(scenes.images.std())
    assert -1.0 < mean < 1.0 and 0.3 < std < 2.0


def test_labels_and_instance_maps_agree(scenes):
    for i in range(len(scenes)):
        labels, inst, digits = scenes.labels[i], scenes.instances[i], scenes.digits[i]
        assert torch.equal(labels > 0, inst > 0), "a pixel is an object pixel in both maps or in neither"
        k = len(digits)
        assert int(inst.max()) == k
        assert sorted(torch.unique(inst).tolist()) == list(range(k + 1)), "instances are numbered 1..k"
        for j in range(1, k + 1):
            classes = torch.unique(labels[inst == j]).tolist()
            assert classes == [int(digits[j - 1]) + 1], "every pixel of an object carries its digit's class"


def test_centres_are_centres_of_mass_of_the_instances(scenes):
    for i in range(len(scenes)):
        inst = scenes.instances[i].numpy()
        k = len(scenes.digits[i])
        expected = np.array(ndimage.center_of_mass(np.ones_like(inst), inst, range(1, k + 1))).reshape(-1, 2)
        np.testing.assert_allclose(scenes.centres[i], expected, rtol=0, atol=1e-9)


def test_points_are_the_object_pixels_nearest_to_the_centres(scenes):
    for i in range(len(scenes)):
        inst = scenes.instances[i].numpy()
        for j, ((r, c), centre) in enumerate(zip(scenes.points[i], scenes.centres[i]), start=1):
            assert inst[r, c] == j, "the point lies on its own object"
            rows, cols = np.nonzero(inst == j)
            d2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
            assert (r - centre[0]) ** 2 + (c - centre[1]) ** 2 == pytest.approx(d2.min())
            assert int(scenes.labels[i, r, c]) == int(scenes.digits[i][j - 1]) + 1


def test_counts_are_the_objects_in_the_instance_maps_class_by_class():
    s = digit_scenes(40, 64, seed=4, objects=(3, 5))
    counts = s.counts()
    assert counts.dtype == torch.int64 and counts.shape == (40,)
    for i, (inst, labels) in enumerate(zip(s.instances.numpy(), s.labels.numpy())):
        ids = np.unique(inst[inst > 0])  # the objects actually drawn, read from the map
        assert int(counts[i]) == len(ids), f"scene {i}: counts() says {int(counts[i])}, the map holds {len(ids)}"
        per_class = np.zeros(NUM_CLASSES, np.int64)
        for j in ids:
            (cls,) = np.unique(labels[inst == j])
            per_class[cls] += 1
        expected = np.bincount(s.digits[i] + 1, minlength=NUM_CLASSES)
        np.testing.assert_array_equal(per_class, expected, err_msg=f"scene {i}: digits per class")
    assert int(counts.max()) == 5 and int(counts.min()) >= 1  # some scene fits all five, none is empty


def _thresholded_glyph_at_every_size(glyph: np.ndarray, sides) -> list[np.ndarray]:
    """The recipe of chapter 2, written out: bilinear scaling, then ink > ``INK_THRESHOLD``, cropped to
    its bounding box. ``ndimage.zoom`` derives its grid from the output shape only, so every scale
    factor that gives a ``side x side`` digit gives the same mask. (scipy's zoom, as the generator
    uses: many interpolated values fall exactly on 0.35, where another library's float32 rounding
    would flip pixels; what is tested is the placement, not the scaling.)"""
    out = []
    for side in sides:
        mask = ndimage.zoom(glyph, side / glyph.shape[0], order=1) > INK_THRESHOLD
        assert mask.shape == (side, side)
        rows, cols = np.nonzero(mask)
        out.append(mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1])
    return out


@pytest.mark.parametrize("size, objects, scale", [(64, (3, 5), (2.0, 3.5)), (48, (6, 8), (2.0, 2.5))])
def test_digits_never_overlap_every_object_is_its_whole_glyph(size, objects, scale):
    # overlap would hide part of an earlier digit under a later one: so each instance must be the
    # complete thresholded scan it was drawn from (at one of the sizes its scale range allows)
    s = digit_scenes(12, size, seed=9, objects=objects, scale=scale)
    bank = load_digits().images.astype(np.float32) / 16.0
    sides = range(int(round(8 * scale[0])), int(round(8 * scale[1])) + 1)
    crowded = 0
    for i, (inst, sources) in enumerate(zip(s.instances.numpy(), s.sources)):
        crowded += len(sources) >= 4
        for j, src in enumerate(sources, start=1):
            rows, cols = np.nonzero(inst == j)
            assert len(rows), f"scene {i}, object {j}: no pixel of it is left in the instance map"
            drawn = inst[rows.min():rows.max() + 1, cols.min():cols.max() + 1] == j
            candidates = _thresholded_glyph_at_every_size(bank[src], sides)
            assert any(c.shape == drawn.shape and np.array_equal(c, drawn) for c in candidates), (
                f"scene {i}, object {j}: its pixels are not the whole of scan {src} at any allowed size "
                "(partly covered by another digit, or not drawn by the documented recipe)")
    assert crowded >= 3, "too few crowded scenes (4 digits or more) to put the placement to the test"


def test_digits_are_separated_by_background_so_no_blob_holds_two_of_them():
    # the one-pixel margin of the placement: distinct digits never touch, not even at a corner
    s = digit_scenes(40, 48, seed=4, objects=(4, 6))
    for i, inst in enumerate(s.instances.numpy()):
        blobs, n = ndimage.label(inst > 0, structure=np.ones((3, 3), bool))
        for b in range(1, n + 1):
            assert len(np.unique(inst[blobs == b])) == 1, f"scene {i}: two digits touch"
        sizes = np.bincount(inst.ravel())[1:]
        assert (sizes >= 4).all(), "every digit keeps at least 4 pixels"


def test_binary_variant_is_the_same_scene_with_two_classes():
    multi = digit_scenes(8, 40, seed=7)
    binary = digit_scenes(8, 40, seed=7, binary=True)
    assert binary.num_classes == 2 and binary.class_names == ("background", "digit")
    assert torch.equal(binary.images, multi.images)
    assert torch.equal(binary.instances, multi.instances)
    assert torch.equal(binary.labels, (multi.labels > 0).long())
    for a, b in zip(binary.digits, multi.digits):  # the digit identity is still known
        np.testing.assert_array_equal(a, b)


def test_class_frequencies_are_a_bincount(scenes):
    freq = scenes.class_frequencies()
    expected = np.bincount(scenes.labels.numpy().ravel(), minlength=NUM_CLASSES) / scenes.labels.numel()
    np.testing.assert_allclose(freq.numpy(), expected, rtol=0, atol=1e-12)
    assert float(freq[0]) > 0.5, "background is the majority class"


def test_compose_scenes_takes_any_glyph_bank():
    rng = np.random.default_rng(0)
    glyphs = (rng.random((5, 6, 6)) > 0.4).astype(np.float32)
    s = compose_scenes(glyphs, np.arange(5), 4, size=30, seed=1, scale=(2.0, 2.0), clutter=0, noise=0.0)
    assert s.images.shape == (4, 1, 30, 30)
    assert all(set(d.tolist()) <= set(range(5)) for d in s.digits)
    empty = compose_scenes(glyphs, np.arange(5), 0, size=30)
    assert empty.images.shape == (0, 1, 30, 30) and len(empty) == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(split="validation"), "split must be 'train' or 'test'"),
        (dict(n=-1), "non-negative"),
        (dict(n=2.5), "must be an integer"),
        (dict(size=0), "positive ints"),
        (dict(size=(32, -4)), "positive ints"),
        (dict(size="big"), "size must be"),
        (dict(objects=(3, 1)), "min <= max"),
        (dict(scale=(0.0, 2.0)), "positive"),
        (dict(scale=2.0), "pair"),
        (dict(noise=-0.1), "noise"),
        (dict(clutter=-1), "clutter"),
        (dict(seed=-3), "seed"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    args = dict(n=2, size=32, split="train", seed=0) | kwargs
    with pytest.raises((ValueError, TypeError), match=message):
        digit_scenes(**args)


def test_bad_glyph_banks_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(m, h, w\)"):
        compose_scenes(np.zeros((4, 8)), np.arange(4), 1)
    with pytest.raises(ValueError, match=r"classes must have shape \(3,\)"):
        compose_scenes(np.zeros((3, 8, 8)), np.arange(4), 1)
    with pytest.raises(ValueError, match="0..9"):
        compose_scenes(np.zeros((3, 8, 8)), np.array([0, 1, 12]), 1)
    with pytest.raises(ValueError, match="empty"):
        compose_scenes(np.zeros((0, 8, 8)), np.zeros(0, np.int64), 1)
