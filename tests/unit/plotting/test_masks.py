"""Plots give students clear errors and a legend of the classes present."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_utils.plotting import PALETTE, mask_cmap, show_mask, show_scenes  # noqa: E402


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
