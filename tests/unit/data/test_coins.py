"""The coins photograph and its committed point annotations (chapter 5, lab 5)."""

import runpy

import numpy as np
from scipy import ndimage

from helpers import REPO
from course_utils.data.coins import TRUE_COUNT, coin_points, coins_image, points_in_window, read_points_csv

LAB = REPO / "labs" / "05_where_labels_come_from"


def test_package_copy_equals_the_committed_csv():
    committed = read_points_csv(LAB / "coins_points.csv")
    np.testing.assert_array_equal(coin_points(), committed)
    assert len(committed) == TRUE_COUNT == 24


def test_the_procedure_reproduces_the_committed_csv():
    script = runpy.run_path(str(LAB / "make_coins_points.py"))
    from skimage import data

    components = script["coin_mask"](data.coins())
    pts = script["coin_points"](components)
    script["review"](components, pts)  # the by-eye review, as assertions
    np.testing.assert_array_equal(pts, read_points_csv(LAB / "coins_points.csv"))


def test_every_point_lies_on_a_distinct_bright_coin():
    image = coins_image()
    assert image.shape == (303, 384) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    pts = coin_points()
    # an independent coin mask: Otsu-free, a plain threshold between dark background and coins
    coins, _ = ndimage.label(ndimage.binary_opening(image > 0.4, iterations=2))
    smooth = ndimage.uniform_filter(image, 9)
    assert (smooth[pts[:, 0], pts[:, 1]] > 0.4).all(), "a point lies on the dark background"
    owners = coins[pts[:, 0], pts[:, 1]]
    assert len(set(owners[owners > 0].tolist())) >= 20, "points should sit on different coins"
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) + np.eye(len(pts)) * 1e9
    assert d.min() > 40, "two points are closer than a coin's width"


def test_points_in_window_shifts_and_filters():
    pts = np.array([[10, 10], [50, 80], [100, 20]])
    np.testing.assert_array_equal(points_in_window(pts, slice(40, 120), slice(0, 90)), [[10, 80], [60, 20]])
    assert points_in_window(pts, slice(0, 5), slice(0, 5)).shape == (0, 2)


def test_read_points_csv_handles_a_single_row(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("row,col\n3,4\n")
    np.testing.assert_array_equal(read_points_csv(f), [[3, 4]])
