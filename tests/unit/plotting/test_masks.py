"""Plots give students clear errors and a legend of the classes present."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.plotting import PALETTE, mask_cmap, show_mask, show_scenes  # noqa: E402
from course_utils.data.digit_scenes import CLASS_NAMES  # noqa: E402


def test_show_mask_draws_a_legend_of_present_classes():
    fig, ax = plt.subplots()
    mask = torch.tensor([[0, 0], [2, 2]])
    show_mask(ax, mask, ["background", "a", "b"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["background", "b"]
    plt.close(fig)


@pytest.mark.parametrize(
    "mask, error, match",
    [
        (torch.zeros(1, 2, 2, dtype=torch.long), ValueError, r"shape \(H, W\)"),
        (torch.zeros(2, 2), TypeError, "argmax"),
        (torch.full((2, 2), 5), ValueError, "class names"),
    ],
)
def test_show_mask_explains_bad_input(mask, error, match):
    fig, ax = plt.subplots()
    with pytest.raises(error, match=match):
        show_mask(ax, mask, ["background", "a"])
    plt.close(fig)


def test_palette_is_distinct_and_grid_has_one_column_per_scene():
    assert len(set(PALETTE)) == len(PALETTE)
    assert mask_cmap(11).N == 11
    fig = show_scenes(torch.randn(3, 1, 8, 8), torch.zeros(3, 8, 8, dtype=torch.long), ["bg"], n=3)
    assert len(fig.axes) == 6
    plt.close(fig)


def test_show_scenes_has_one_legend_listing_every_class_drawn_in_any_panel():
    names = ["background", "a", "b", "c", "d", "e"]
    masks = torch.zeros(3, 4, 4, dtype=torch.long)
    masks[0, 0, 0], masks[1, 0, 0], masks[2, 0, 0] = 1, 2, 3  # a different class in each scene
    predictions = torch.zeros(3, 4, 4, dtype=torch.long)
    predictions[2, 1, 1] = 5  # and one only in a prediction
    fig = show_scenes(torch.randn(3, 1, 4, 4), masks, names, predictions=predictions, n=3)
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["background", "a", "b", "c", "e"]
    plt.close(fig)


# Machado, Oliveira and Fernandes (2009): simulated protan, deutan and tritan vision (severity 1), in linear RGB
CVD_SIMULATIONS = {
    "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}


def test_digit_class_colours_stay_apart_under_colour_vision_deficiency():
    """Any two of the digit scenes' eleven class colours differ by a CIEDE2000 distance of 10 or more,
    as seen with normal vision and with each of the three colour-vision deficiencies (the teal that
    once drew digit 9 was 3.5 from digit 8's wine under deutan vision and 4.8 from digit 2's green
    under tritan vision)."""
    import numpy as np
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab

    rgb = np.array([to_rgb(c) for c in PALETTE[:len(CLASS_NAMES)]])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    worst = {}
    for vision, matrix in {"normal": np.eye(3), **CVD_SIMULATIONS}.items():
        seen = np.clip(linear @ np.array(matrix).T, 0, 1)
        srgb = np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen ** (1 / 2.4) - 0.055)
        lab = rgb2lab(srgb[None])[0]
        distance = deltaE_ciede2000(lab[:, None], lab[None, :])
        np.fill_diagonal(distance, np.inf)
        i, j = np.unravel_index(distance.argmin(), distance.shape)
        worst[vision] = (round(float(distance[i, j]), 1), CLASS_NAMES[i], CLASS_NAMES[j])
    assert all(d >= 10 for d, _, _ in worst.values()), worst


def test_show_mask_can_name_each_region_so_classes_need_no_colour():
    fig, ax = plt.subplots()
    mask = torch.zeros(20, 20, dtype=torch.long)
    mask[2:8, 2:8] = 3      # a "2"
    mask[12:18, 12:18] = 3  # another "2", apart from the first
    mask[2:8, 12:18] = 10   # a "9"
    mask[15, 2] = 5         # a speck, too small to carry a name
    show_mask(ax, mask, CLASS_NAMES, legend=False, labels=True)
    written = sorted((t.get_text(), round(t.get_position()[0]), round(t.get_position()[1])) for t in ax.texts)
    assert [name for name, _, _ in written] == ["2", "2", "9"], written
    for name, x, y in written:  # each name sits well inside its own region, not on its edge
        assert CLASS_NAMES[mask[y, x]] == name and mask[y - 1:y + 2, x - 1:x + 2].unique().numel() == 1, written
    plt.close(fig)
