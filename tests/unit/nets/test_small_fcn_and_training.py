"""The shared networks and training loop, checked against torch's own operators."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import digit_scenes
from course_utils.nets import SmallFCN, bilinear_kernel
from course_utils.nets import count_parameters, fit, pixel_loss, predict


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


def test_fit_takes_exactly_max_steps_restarting_the_loader_and_matches_a_hand_written_loop():
    data = torch.utils.data.TensorDataset(torch.randn(5, 1, 8, 8), torch.randint(0, 2, (5, 8, 8)))
    torch.manual_seed(0)
    net = nn.Conv2d(1, 2, 3, padding=1)
    reference = nn.Conv2d(1, 2, 3, padding=1)
    reference.load_state_dict(net.state_dict())
    history = fit(net, data, max_steps=7, batch_size=2, lr=1e-2, progress=False)  # 3 batches a pass: 3 + 3 + 1
    assert history["steps"] == 7 and len(history["loss"]) == 3
    loader = torch.utils.data.DataLoader(data, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    steps = 0
    while steps < 7:
        for x, y in loader:
            if steps == 7:
                break
            optimizer.zero_grad()
            F.cross_entropy(reference(x), y).backward()
            optimizer.step()
            steps += 1
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)
    assert fit(net, data, max_steps=0, progress=False)["steps"] == 0


def test_fit_says_what_it_expected():
    net = nn.Conv2d(1, 2, 1)
    data = torch.utils.data.TensorDataset(torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="exactly one"):
        fit(net, data, progress=False)
    with pytest.raises(TypeError, match="TensorDataset"):
        fit(net, (torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4)), epochs=1, progress=False)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fit(lambda x: x, data, epochs=1, progress=False)
    with pytest.raises(TypeError, match="returned None instead of a loss"):
        fit(net, data, epochs=1, loss_fn=lambda s, y: None, progress=False)
    with pytest.raises(ValueError, match="upsample"):
        fit(nn.Conv2d(1, 2, 2, stride=2), data, epochs=1, progress=False)
