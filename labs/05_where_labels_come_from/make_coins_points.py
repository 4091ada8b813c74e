"""Make ``coins_points.csv``: one point per coin in scikit-image's ``coins`` photograph.

Run from anywhere:  python labs/05_where_labels_come_from/make_coins_points.py [--check] [--figure out.png]

The procedure (a labeler's, written down so anyone can redo it):

1. **Propose.** Classical segmentation, as in scikit-image's gallery example "Comparing edge-based
   and region-based segmentation": Sobel edge strength, a watershed from markers placed where the
   photograph is surely background (grey < 30) or surely coin (grey > 150), holes filled.
2. **Clean.** Drop components smaller than 100 pixels (a coin covers more than 1,000): the
   watershed leaves one 2-pixel speck near the top row.
3. **Click.** One point per coin: the coin pixel nearest to the coin's centre of mass, the same
   convention as the ``points`` of the digit scenes.
4. **Review by eye.** The overlay (``--figure``) was checked by a person: the photograph holds
   **24 coins** in 4 rows of 6, every coin has exactly one point, every point lies on its coin, and
   no point lies on the background. The assertions below pin that review down, so the script fails
   if a library change ever moves a point off its coin or changes the count.

The CSV has a header ``row,col`` and one line per coin, sorted by row of coins, then left to right.
A copy of the same points ships inside the package (``course_utils.data.coins.COIN_POINTS``) so the
lab also runs where this folder is not present (the autograder); ``tests/test_coins.py`` checks that
the two agree.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data, filters, segmentation

TRUE_COUNT = 24  # counted by eye: 4 rows of 6 coins
ROWS, PER_ROW = 4, 6
MIN_AREA = 100
HERE = Path(__file__).resolve().parent
CSV = HERE / "coins_points.csv"


def coin_mask(image: np.ndarray) -> np.ndarray:
    """Steps 1 and 2: the cleaned coin mask, as labeled components."""
    edges = filters.sobel(image)
    markers = np.zeros_like(image, dtype=np.int64)
    markers[image < 30] = 1
    markers[image > 150] = 2
    coins = ndimage.binary_fill_holes(segmentation.watershed(edges, markers) == 2)
    components, n = ndimage.label(coins)
    areas = ndimage.sum(coins, components, index=np.arange(1, n + 1))
    keep = np.nonzero(areas >= MIN_AREA)[0] + 1
    cleaned, _ = ndimage.label(np.isin(components, keep))
    return cleaned


def coin_points(components: np.ndarray) -> np.ndarray:
    """Step 3: the pixel of every component nearest to its centre of mass, ``(k, 2)`` as (row, col),
    sorted into rows of coins, then left to right."""
    pts = []
    for k in range(1, components.max() + 1):
        rows, cols = np.nonzero(components == k)
        r0, c0 = rows.mean(), cols.mean()
        i = np.argmin((rows - r0) ** 2 + (cols - c0) ** 2)
        pts.append((int(rows[i]), int(cols[i])))
    pts = np.array(pts, dtype=np.int64)
    order = np.argsort(pts[:, 0])
    pts = pts[order]
    # group into rows of coins (the rows are far apart), then sort each row by column
    groups = np.split(pts, np.nonzero(np.diff(pts[:, 0]) > 30)[0] + 1)
    return np.concatenate([g[np.argsort(g[:, 1])] for g in groups])


def review(components: np.ndarray, pts: np.ndarray) -> None:
    """Step 4, the by-eye review written as checks."""
    assert len(pts) == TRUE_COUNT, f"expected {TRUE_COUNT} coins, found {len(pts)}"
    groups = np.split(pts, np.nonzero(np.diff(pts[:, 0]) > 30)[0] + 1)
    assert [len(g) for g in groups] == [PER_ROW] * ROWS, f"expected {ROWS} rows of {PER_ROW}, got {[len(g) for g in groups]}"
    owners = components[pts[:, 0], pts[:, 1]]
    assert (owners > 0).all(), "a point lies on the background"
    assert len(set(owners.tolist())) == TRUE_COUNT, "two points lie on the same coin"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the committed CSV is reproduced")
    parser.add_argument("--figure", type=Path, help="also save the review overlay to this PNG")
    args = parser.parse_args(argv)
    image = data.coins()
    components = coin_mask(image)
    pts = coin_points(components)
    review(components, pts)
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4.8))
        ax.imshow(image, cmap="gray")
        ax.contour(components > 0, levels=[0.5], colors="#56b4e9", linewidths=0.8)
        ax.plot(pts[:, 1], pts[:, 0], "x", color="#e69f00", ms=7, mew=2)
        for i, (r, c) in enumerate(pts):
            ax.annotate(str(i + 1), (c + 4, r - 4), color="#f0e442", fontsize=7)
        ax.set_title(f"{len(pts)} coins, one point each")
        ax.axis("off")
        fig.savefig(args.figure, dpi=90, bbox_inches="tight")
    if args.check:
        committed = np.loadtxt(CSV, delimiter=",", skiprows=1, dtype=np.int64)
        assert np.array_equal(committed, pts), "coins_points.csv differs from what the procedure gives"
        print(f"{CSV.name} reproduced: {len(pts)} points")
        return
    with open(CSV, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["row", "col"])
        writer.writerows(pts.tolist())
    print(f"wrote {len(pts)} points to {CSV}")


if __name__ == "__main__":
    main()
