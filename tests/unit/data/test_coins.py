"""The coins photograph and its committed point annotations (chapter 5, lab 5)."""

import runpy

import numpy as np
from scipy import ndimage
from skimage.feature import canny
from skimage.transform import hough_circle, hough_circle_peaks

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


def coins_found_by_circles(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An independent look at the photograph: coins are circles. Canny edges and a circular Hough
    transform (radii 15 to 35 pixels); a coin is a peak at least half as strong as the strongest.
    Returns the circles' centres ``(m, 2)`` as (row, col) and radii ``(m,)``."""
    radii = np.arange(15, 36)
    votes = hough_circle(canny(image, sigma=2), radii)
    strength, cols, rows, r = hough_circle_peaks(votes, radii, min_xdistance=25, min_ydistance=25, total_num_peaks=40)
    coin = strength >= 0.5 * strength.max()
    assert strength[coin].min() > 1.2 * strength[~coin].max(), "no clear gap between coins and other circles"
    return np.stack([rows[coin], cols[coin]], 1), r[coin]


def test_every_coin_has_exactly_one_point_near_its_centre():
    image = coins_image()
    assert image.shape == (303, 384) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    pts = coin_points()
    centres, radii = coins_found_by_circles(image)
    assert len(centres) == TRUE_COUNT, f"the circle detector finds {len(centres)} coins"
    dist = np.sqrt(((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1))  # (point, coin)
    inside = dist < radii[None, :]
    assert (inside.sum(1) == 1).all(), f"points on no coin or on two: {np.nonzero(inside.sum(1) != 1)[0]}"
    assert (inside.sum(0) == 1).all(), f"coins with no point or several: {np.nonzero(inside.sum(0) != 1)[0]}"
    # a click is the coin pixel nearest the coin's centre of mass: well inside the coin
    coin_of = inside.argmax(1)
    off_centre = dist[np.arange(len(pts)), coin_of] / radii[coin_of]
    assert (off_centre < 0.5).all(), f"a point is {off_centre.max():.2f} radii from its coin's centre"
    smooth = ndimage.uniform_filter(image, 9)
    assert (smooth[pts[:, 0], pts[:, 1]] > 0.4).all(), "a point lies on the dark background"
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
