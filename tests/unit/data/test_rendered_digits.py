"""The handwriting simulator of chapter 5: format, sensor model, pen geometry, and a real domain gap."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.data import handwritten_glyphs
from course_utils.data.rendered_digits import (
    BITMAP,
    STROKES,
    _stroke_distance,
    bitmaps_to_glyphs,
    render_bitmap,
    rendered_glyphs,
    rendered_scenes,
)


def test_rendered_glyphs_have_the_format_of_the_real_ones():
    glyphs, classes = rendered_glyphs(30, seed=1)
    real, _ = handwritten_glyphs("train")
    assert glyphs.shape == (30, 8, 8) == (30,) + real.shape[1:]
    assert glyphs.dtype == np.float32 and classes.dtype == np.int64
    assert glyphs.min() >= 0 and glyphs.max() <= 1
    # 17 grey levels, like the real scans (counts of 4x4 blocks divided by 16)
    np.testing.assert_allclose(glyphs * 16, np.round(glyphs * 16), atol=1e-6)
    assert classes.tolist() == [i % 10 for i in range(30)]
    assert all(g.sum() > 3 for g in glyphs), "every glyph has ink"


def test_rendered_glyphs_are_a_function_of_the_seed():
    a, _ = rendered_glyphs(12, seed=5)
    b, _ = rendered_glyphs(12, seed=5)
    c, _ = rendered_glyphs(12, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    only, cls = rendered_glyphs(6, seed=0, classes=[3, 7])
    assert cls.tolist() == [3, 7, 3, 7, 3, 7]


def test_sensor_model_is_average_pooling_of_4x4_blocks():
    rng = np.random.default_rng(0)
    bitmaps = rng.random((5, BITMAP, BITMAP)) < 0.3
    ours = bitmaps_to_glyphs(bitmaps)
    ref = F.avg_pool2d(torch.from_numpy(bitmaps).float().unsqueeze(1), 4).squeeze(1).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match=r"\(n, 32, 32\)"):
        bitmaps_to_glyphs(np.zeros((2, 16, 16)))


def test_pen_distance_matches_the_exact_distance_to_the_segments():
    rng = np.random.default_rng(2)
    for digit in range(10):
        polylines = [s * 26 + 3 + rng.normal(0, 0.3, 2) for s in STROKES[digit]]
        approx = _stroke_distance(polylines, BITMAP)
        yy, xx = np.mgrid[0:BITMAP, 0:BITMAP]
        p = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
        exact = np.full(len(p), np.inf)
        for poly in polylines:
            for a, b in zip(poly[:-1], poly[1:]):
                ab = b - a
                t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
                exact = np.minimum(exact, np.linalg.norm(p - (a + t[:, None] * ab), axis=1))
        # the pen is rasterized on a 4x finer grid: error below half a coarse pixel
        np.testing.assert_allclose(approx.ravel(), exact, atol=0.35)


def test_render_bitmap_draws_one_connected_stroke_set_and_rejects_bad_digits():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for digit in range(10):
        bitmap = render_bitmap(digit, rng)
        assert bitmap.dtype == bool and bitmap.shape == (BITMAP, BITMAP)
        rows = np.nonzero(bitmap.any(1))[0]
        assert rows.max() - rows.min() >= 20, "digits are size-normalized to nearly the full height"
        assert ndimage.label(bitmap, structure=np.ones((3, 3)))[1] <= 2
    with pytest.raises(ValueError, match="0..9"):
        render_bitmap(10, rng)


def test_simulated_digits_transfer_to_real_ones_but_with_a_gap():
    from sklearn.linear_model import LogisticRegression

    sim, sim_y = rendered_glyphs(600, seed=0)
    real, real_y = handwritten_glyphs("train")
    test, test_y = handwritten_glyphs("test")
    from_sim = LogisticRegression(max_iter=500).fit(sim.reshape(len(sim), -1), sim_y)
    from_real = LogisticRegression(max_iter=500).fit(real[:600].reshape(600, -1), real_y[:600])
    acc_sim = from_sim.score(test.reshape(len(test), -1), test_y)
    acc_real = from_real.score(test.reshape(len(test), -1), test_y)
    assert acc_sim > 0.35, f"rendered digits should teach something about real ones (accuracy {acc_sim:.2f})"
    assert acc_real > acc_sim + 0.2, f"and yet leave a domain gap ({acc_sim:.2f} vs {acc_real:.2f})"


def test_rendered_scenes_come_with_exact_labels():
    scenes = rendered_scenes(6, 48, seed=0, bank=40)
    again = rendered_scenes(6, 48, seed=0, bank=40)
    assert torch.equal(scenes.images, again.images) and torch.equal(scenes.labels, again.labels)
    assert scenes.images.shape == (6, 1, 48, 48) and scenes.labels.shape == (6, 48, 48)
    assert torch.equal(scenes.labels > 0, scenes.instances > 0)
    for i in range(6):
        for k, digit in enumerate(scenes.digits[i], start=1):
            assert set(scenes.labels[i][scenes.instances[i] == k].unique().tolist()) == {digit + 1}
    binary = rendered_scenes(2, 32, seed=1, bank=20, binary=True)
    assert set(binary.labels.unique().tolist()) <= {0, 1}
