"""The shared networks and training loop, checked against torch's own operators."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import digit_scenes
from course_utils.models import SmallFCN, bilinear_kernel
from course_utils.training import count_parameters, fit, pixel_loss, predict


@pytest.mark.parametrize("factor", [2, 4])
def test_bilinear_kernel_reproduces_bilinear_interpolation_away_from_the_border(factor):
    up = nn.ConvTranspose2d(3, 3, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(2 * factor, 3))
    x = torch.randn(2, 3, 9, 7)
    ours = up(x)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == ref.shape
    b = factor  # the first and last input pixel's footprint differ: zero padding vs edge clamping
    torch.testing.assert_close(ours[..., b:-b, b:-b], ref[..., b:-b, b:-b], atol=1e-5, rtol=1e-5)


def test_small_fcn_labels_every_pixel_of_any_admissible_size():
    net = SmallFCN(1, 11, width=4, depth=2)
    for h, w in [(16, 16), (32, 48), (20, 12)]:
        assert net(torch.randn(2, 1, h, w)).shape == (2, 11, h, w)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 18, 16))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        net(torch.randn(1, 16, 16))


def test_pixel_loss_is_torch_cross_entropy_with_clear_shape_errors():
    scores, labels = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    torch.testing.assert_close(pixel_loss(scores, labels), F.cross_entropy(scores, labels))
    with pytest.raises(ValueError, match="upsample"):
        pixel_loss(torch.randn(2, 3, 2, 2), labels)
    with pytest.raises(ValueError, match="one more dimension"):
        pixel_loss(torch.randn(2, 4, 5), labels)


def test_fit_lowers_the_loss_and_predict_returns_scores_on_the_cpu():
    data = digit_scenes(32, 16, seed=3, binary=True)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    history = fit(net, data, epochs=4, device=torch.device("cpu"), lr=1e-2, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    scores = predict(net, data.images, torch.device("cpu"), batch_size=5)
    assert scores.shape == (32, 2, 16, 16) and scores.device.type == "cpu"
    assert count_parameters(net) == 8 * 9 + 8 + 8 * 2 + 2
