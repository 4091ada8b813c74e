"""Blob helpers (chapter 5) against scikit-image's labeling, a brute-force breadth-first search and
hand-made cases with known answers."""

from collections import deque

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as sk_label

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


def path_lengths_inside(blob: np.ndarray, start) -> np.ndarray:
    """Length of the shortest 4-connected path from ``start`` to every pixel, staying inside the blob
    (breadth-first search; -1 where no path exists)."""
    dist = np.full(blob.shape, -1, np.int64)
    dist[tuple(start)] = 0
    queue = deque([tuple(start)])
    while queue:
        r, c = queue.popleft()
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < blob.shape[0] and 0 <= cc < blob.shape[1] and blob[rr, cc] and dist[rr, cc] < 0:
                dist[rr, cc] = dist[r, c] + 1
                queue.append((rr, cc))
    return dist


def cut_bounds(blob: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What "each pixel goes to the point it is nearest to inside the blob" forces on the cut.

    A pixel's owners are the points at the least path length. Where two 4-neighbours each have one
    owner and the owners differ, both pixels are on the cut (``must``). A pixel with one owner whose
    4-neighbours in the blob all have that same owner only, is not (``may`` is False). Ties (pixels
    halfway between two points) are left to the implementation."""
    d = np.stack([path_lengths_inside(blob, p) for p in points]).astype(float)
    d[d < 0] = np.inf
    owners = d == d.min(0)
    unique = owners.sum(0) == 1
    owner = np.where(unique, owners.argmax(0), -1)
    must, may = np.zeros_like(blob), np.zeros_like(blob)
    for dr, dc in ((0, 1), (1, 0)):
        a = (slice(0, blob.shape[0] - dr), slice(0, blob.shape[1] - dc))
        b = (slice(dr, None), slice(dc, None))
        pair = blob[a] & blob[b]
        differ = pair & unique[a] & unique[b] & (owner[a] != owner[b])
        unsure = pair & ~(unique[a] & unique[b] & (owner[a] == owner[b]))
        for x in (a, b):
            must[x] |= differ
            may[x] |= unsure
    return must, may & blob


def test_path_lengths_inside_a_u_shaped_blob_go_around_the_gap():
    blob = np.zeros((5, 5), bool)
    blob[:, 0] = blob[:, 4] = blob[4, :] = True  # a U: the two arms meet only at the bottom
    d = path_lengths_inside(blob, (0, 0))
    assert d[0, 4] == 12 and d[4, 2] == 6 and d[0, 2] == -1


@pytest.mark.parametrize("n_points", [2, 3, 4])
def test_split_boundaries_give_each_pixel_to_the_point_nearest_inside_the_blob(n_points):
    rng = np.random.default_rng(4 + n_points)
    checked = forced = 0
    for seed in range(30):
        mask = ndimage.binary_opening(random_masks(seed, shape=(24, 24), density=0.7))
        blob_map, n = label_blobs(mask, connectivity=4)
        if n == 0:
            continue
        big = 1 + int(np.argmax(np.bincount(blob_map.ravel())[1:]))
        blob = blob_map == big
        rows, cols = np.nonzero(blob)
        if len(rows) < 30:
            continue
        pick = rng.choice(len(rows), size=n_points, replace=False)
        pts = np.stack([rows[pick], cols[pick]], 1)
        cut = split_boundaries(blob, pts)
        must, may = cut_bounds(blob, pts)
        missing, extra = must & ~cut, cut & ~may
        assert not missing.any(), f"seed {seed}: pixels between two regions not cut: {np.argwhere(missing)[:5]}"
        assert not extra.any(), f"seed {seed}: pixels inside one point's region are cut: {np.argwhere(extra)[:5]}"
        # removing the cut leaves no 4-path between two points
        rest, _ = ndimage.label(blob & ~cut, structure=ndimage.generate_binary_structure(2, 1))
        owners = rest[pts[:, 0], pts[:, 1]]
        kept = owners[owners > 0]
        assert len(set(kept.tolist())) == len(kept), "two points are still connected after the cut"
        checked += 1
        forced += bool(must.any())
    # (a cut made only of ties, pixels halfway between two points, forces nothing: count the others)
    assert checked >= 10 and forced >= 5, f"{checked} blobs checked, {forced} with pixels forced onto the cut"


def test_split_of_a_u_shaped_blob_follows_paths_inside_it():
    # a U, one pixel wide: arms in columns 0 and 4, joined by row 6. From (0, 0) to (1, 4) the path
    # inside runs down, along and up (15 steps, so no pixel is tied): (6, 1) is 7 steps from the left
    # point and 8 from the right one, (6, 2) 8 and 7. Straight-line distance would cut at (6, 0)-(6, 1).
    blob = np.zeros((7, 5), bool)
    blob[:, 0] = blob[:, 4] = blob[6, :] = True
    cut = split_boundaries(blob, [[0, 0], [1, 4]])
    assert sorted(map(tuple, np.argwhere(cut).tolist())) == [(6, 1), (6, 2)]
    must, may = cut_bounds(blob, np.array([[0, 0], [1, 4]]))
    assert np.array_equal(must, cut) and np.array_equal(may, cut), "the brute-force bounds agree and are exact here"


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
