"""Blob helpers (chapter 5) against scikit-image's labeling and an independent cut computation."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.segmentation import watershed

from course_utils.ops import count_blobs, label_blobs, points_per_blob, split_boundaries


def random_masks(seed=0, shape=(4, 23, 19), density=0.45):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < density


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label maps describe the same partition (ids may differ)."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("connectivity, sk_connectivity", [(8, 2), (4, 1)])
def test_label_blobs_matches_scikit_image_label(connectivity, sk_connectivity):
    for mask in random_masks(1):
        ours, n = label_blobs(mask, connectivity=connectivity)
        ref, n_ref = sk_label(mask, connectivity=sk_connectivity, return_num=True)
        assert n == n_ref and ours.dtype == np.int64
        assert same_partition(ours, ref)
        assert np.array_equal(ours > 0, mask)


def test_count_blobs_counts_every_mask_of_a_batch_and_accepts_torch():
    masks = random_masks(2, density=0.3)
    counts = count_blobs(torch.from_numpy(masks))
    assert counts.dtype == torch.int64 and counts.shape == (4,)
    assert counts.tolist() == [int(sk_label(m, connectivity=2).max()) for m in masks]
    assert count_blobs(torch.zeros(2, 5, 5, dtype=torch.long)).tolist() == [0, 0]


def test_points_per_blob_matches_a_loop():
    mask = random_masks(3, shape=(30, 30), density=0.4)
    blob_map, n = label_blobs(mask)
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 30, size=(40, 2))
    ours = points_per_blob(blob_map, n, pts)
    ref = np.zeros(n + 1, np.int64)
    for r, c in pts:
        ref[blob_map[r, c]] += 1
    np.testing.assert_array_equal(ours, ref)
    assert points_per_blob(blob_map, n, np.zeros((0, 2))).tolist() == [0] * (n + 1)


def test_split_of_a_bar_between_two_points_is_a_vertical_cut_in_the_middle():
    blob = np.zeros((7, 13), bool)
    blob[1:6, 1:12] = True
    cut = split_boundaries(blob, [[3, 2], [3, 10]])
    cols = np.nonzero(cut.any(0))[0]
    assert cols.tolist() == [6, 7] or cols.tolist() == [5, 6], f"cut columns {cols}"
    assert cut[1:6, cols].all() and cut.sum() == 10
    assert not split_boundaries(blob, [[3, 2]]).any(), "one point: nothing to split"
    assert not split_boundaries(blob, [[3, 2], [3, 2]]).any(), "a repeated point is one point"


def test_split_boundaries_match_an_independent_cut_and_separate_the_points():
    rng = np.random.default_rng(4)
    checked = 0
    for seed in range(40):
        mask = ndimage.binary_opening(random_masks(seed, shape=(24, 24), density=0.7))
        blob_map, n = label_blobs(mask, connectivity=4)
        if n == 0:
            continue
        big = 1 + int(np.argmax(np.bincount(blob_map.ravel())[1:]))
        blob = blob_map == big
        rows, cols = np.nonzero(blob)
        if len(rows) < 20:
            continue
        pick = rng.choice(len(rows), size=3, replace=False)
        pts = np.stack([rows[pick], cols[pick]], 1)
        cut = split_boundaries(blob, pts)
        # independent: pixels of the blob 4-adjacent to another point's region
        markers = np.zeros(blob.shape, np.int64)
        markers[pts[:, 0], pts[:, 1]] = np.arange(1, 4)
        regions = watershed(np.zeros(blob.shape), markers, mask=blob)
        cross = ndimage.generate_binary_structure(2, 1)
        ref = np.zeros_like(blob)
        for r in range(1, 4):
            own = regions == r
            ref |= ndimage.binary_dilation(own, cross) & blob & ~own
        np.testing.assert_array_equal(cut, ref)
        # removing the cut leaves no 4-path between two points
        rest, _ = ndimage.label(blob & ~cut, structure=cross)
        owners = rest[pts[:, 0], pts[:, 1]]
        kept = owners[owners > 0]
        assert len(set(kept.tolist())) == len(kept), "two points are still connected after the cut"
        checked += 1
    assert checked >= 10


def test_split_follows_the_elevation_ridge():
    blob = np.zeros((5, 15), bool)
    blob[:, 1:14] = True
    ridge = np.zeros(blob.shape)
    ridge[:, 4] = 1.0  # a high ridge nearer the left point
    cut = split_boundaries(blob, [[2, 2], [2, 12]], elevation=ridge)
    assert set(np.nonzero(cut.any(0))[0].tolist()) <= {3, 4, 5}
    flat = split_boundaries(blob, [[2, 2], [2, 12]])
    assert set(np.nonzero(flat.any(0))[0].tolist()) <= {6, 7, 8}, "without a surface the cut is halfway"


def test_helpers_explain_bad_inputs():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        label_blobs(np.zeros((2, 3, 4), bool))
    with pytest.raises(TypeError, match="threshold"):
        label_blobs(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        count_blobs(np.zeros((3, 4), bool))
    blob = np.zeros((5, 5), bool)
    blob[1:4, 1:4] = True
    with pytest.raises(ValueError, match="inside the blob"):
        split_boundaries(blob, [[0, 0], [2, 2]])
    with pytest.raises(ValueError, match="inside the 5x5 image"):
        split_boundaries(blob, [[2, 9], [2, 2]])
    with pytest.raises(ValueError, match=r"\(k, 2\)"):
        points_per_blob(np.zeros((5, 5), np.int64), 0, [1, 2, 3])
    with pytest.raises(ValueError, match="connectivity"):
        label_blobs(blob, connectivity=6)
