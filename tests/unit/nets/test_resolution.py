"""Tests of course_utils.nets: the FCN-32s/16s/8s, SegNet-style and U-Net plumbing.

The pieces lab 4 asks students to write (skip fusion, U-Net decoder block, max-unpooling) are not in
the package; these tests plug in deliberately *different* stand-ins (nearest-neighbour upsampling,
the library's ``F.max_unpool2d``) to check the wiring, the shapes, the staged-training copy and the
errors students see. ``FCN.forward`` and ``SegNetStyle.forward`` are checked against the same
network's layers run by hand, with other torch ops for the fixed pieces (bilinear upsampling by
``F.interpolate``, unpooling by ``scatter``), on more than one configuration.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.nets import bilinear_kernel
from course_utils.nets import FCN, Encoder, SegNetStyle, UNet, grow_fcn

WIDTHS = (2, 3, 4, 5, 6)


class NearestFusion(nn.Module):
    """A stand-in fusion: nearest-neighbour upsampling plus a 1x1 score of the skip features."""

    def __init__(self, skip_channels, num_classes):
        super().__init__()
        self.score = nn.Conv2d(skip_channels, num_classes, 1)

    def forward(self, coarse, skip):
        return F.interpolate(coarse, size=skip.shape[-2:], mode="nearest") + self.score(skip)


class NearestBlock(nn.Module):
    """A stand-in U-Net block: nearest-neighbour upsampling, concatenation, one 1x1 convolution."""

    def __init__(self, in_channels, skip_channels, out_channels):
        super().__init__()
        self.mix = nn.Conv2d(in_channels + skip_channels, out_channels, 1)

    def forward(self, x, skip):
        return self.mix(torch.cat([skip, F.interpolate(x, size=skip.shape[-2:], mode="nearest")], 1))


def library_unpool(values, switches, output_size):
    return F.max_unpool2d(values, switches, 2, output_size=output_size)


def images(n=2, size=64, seed=0, dtype=torch.float32):
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_encoder_strides_and_switches_match_max_pool():
    enc = Encoder(1, WIDTHS, return_indices=True).eval()
    x = images(size=96)
    out = enc(x)
    for i in range(5):
        assert out.features[i].shape == (2, WIDTHS[i], 96 // 2**i, 96 // 2**i)
        assert out.pooled[i].shape == (2, WIDTHS[i], 96 // 2 ** (i + 1), 96 // 2 ** (i + 1))
        ref, idx = F.max_pool2d(out.features[i], 2, return_indices=True)
        torch.testing.assert_close(out.pooled[i], ref, rtol=0, atol=0)
        assert torch.equal(out.switches[i], idx)
    assert Encoder(1, WIDTHS)(x).switches is None


def randomised(net: nn.Module, seed: int) -> nn.Module:
    """``net`` in float64 and eval mode with random weights and batch-norm statistics (a "trained"
    network: nothing is at its initial value, so a layer left out or swapped changes the output)."""
    g = torch.Generator().manual_seed(seed)
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g, dtype=b.dtype) + 0.5)
    return net


def pooled_by_hand(encoder: Encoder, x: torch.Tensor) -> list:
    """The encoder's stages run one by one, each followed by a 2x2 max pooling: pool1..pool5."""
    pooled = []
    for stage in encoder.stages:
        x = F.max_pool2d(stage(x), kernel_size=2, stride=2)
        pooled.append(x)
    return pooled


def bilinear_upsampling(scores: torch.Tensor, s: int) -> torch.Tensor:
    """Bilinear upsampling by ``s`` (pixel centres aligned: ``align_corners=False``), with the scores
    taken as zero outside the map, computed by ``F.interpolate`` rather than a transposed convolution."""
    padded = F.pad(scores, (1, 1, 1, 1))
    return F.interpolate(padded, scale_factor=s, mode="bilinear", align_corners=False)[..., s:-s, s:-s]


FCN_CONFIGS = [  # (widths, head width, image size); the second has pool3 and pool4 of one width
    (WIDTHS, 4, (64, 64)),
    ((3, 3, 4, 4, 5), 6, (64, 96)),
]


@pytest.mark.parametrize("widths, head_width, size", FCN_CONFIGS)
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_fcn_forward_is_the_skip_fusion_and_bilinear_upsampling_of_its_own_layers(stride, widths, head_width, size):
    # FCN-32s: score(head(pool5)), upsampled 32x. FCN-16s: fuse_pool4(that score, pool4), upsampled
    # 16x. FCN-8s: fuse_pool3(the FCN-16s fusion, pool3), upsampled 8x. The fusion is the stand-in
    # NearestFusion, written out: nearest 2x upsampling of the coarse scores + a 1x1 score of the skip.
    net = randomised(FCN(num_classes=3, widths=widths, head_width=head_width, stride=stride, fusion=NearestFusion),
                     seed=stride + size[1])
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(stride), dtype=torch.float64)
    with torch.no_grad():
        pool3, pool4, pool5 = pooled_by_hand(net.encoder, x)[2:]
        scores = net.score(net.head(pool5))
        assert scores.shape[-2:] == (size[0] // 32, size[1] // 32)
        if stride <= 16:
            scores = F.interpolate(scores, scale_factor=2, mode="nearest") + net.fuse_pool4.score(pool4)
        if stride <= 8:
            scores = F.interpolate(scores, scale_factor=2, mode="nearest") + net.fuse_pool3.score(pool3)
        expected = bilinear_upsampling(scores, stride)
        out = net(x)
    assert out.shape == expected.shape == (2, 3, *size)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # away from the border (where the map is padded with zeros) it is plain bilinear interpolation
    plain = F.interpolate(scores, scale_factor=stride, mode="bilinear", align_corners=False)
    inner = (Ellipsis, slice(stride // 2, -(stride // 2)), slice(stride // 2, -(stride // 2)))
    torch.testing.assert_close(out[inner], plain[inner], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_fcn_outputs_scores_at_image_size_and_backpropagates(stride):
    net = FCN(num_classes=4, widths=WIDTHS, head_width=5, stride=stride, fusion=NearestFusion)
    x = images(size=64)
    out = net(x)
    assert out.shape == (2, 4, 64, 64)
    out.square().mean().backward()
    assert net.encoder.stages[0][0].weight.grad.abs().sum() > 0
    names = {n.split(".")[0] for n, _ in net.named_parameters()}
    expected = {"encoder", "head", "score"} | ({"fuse_pool4"} if stride <= 16 else set()) | ({"fuse_pool3"} if stride <= 8 else set())
    assert names == expected
    assert "upsample_weight" not in net.state_dict(), "the fixed upsampling must not be a saved parameter"


def test_fcn_uses_pool4_and_pool3_for_the_skips():
    seen = []

    class Recorder(NearestFusion):
        def forward(self, coarse, skip):
            seen.append((tuple(coarse.shape), tuple(skip.shape)))
            return super().forward(coarse, skip)

    FCN(num_classes=3, widths=WIDTHS, head_width=7, stride=8, fusion=Recorder)(images(n=1, size=128))
    assert seen == [((1, 3, 4, 4), (1, WIDTHS[3], 8, 8)), ((1, 3, 8, 8), (1, WIDTHS[2], 16, 16))]


def test_fcn_rejects_bad_inputs_with_the_shape_in_the_message():
    net = FCN(num_classes=3, widths=WIDTHS, head_width=4)
    with pytest.raises(ValueError, match="48x64"):
        net(torch.zeros(1, 1, 48, 64))
    with pytest.raises(ValueError, match=r"\(1, 3, 64, 64\)"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match="floating"):
        net(torch.zeros(1, 1, 64, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="fusion"):
        FCN(stride=16)
    with pytest.raises(ValueError, match="32, 16 or 8"):
        FCN(stride=4, fusion=NearestFusion)
    with pytest.raises(ValueError, match="5 positive"):
        FCN(widths=(1, 2, 3))


def test_fcn_reports_a_fusion_that_returns_the_wrong_shape():
    class Forgets(NearestFusion):
        def forward(self, coarse, skip):
            return coarse  # no upsampling

    with pytest.raises(ValueError, match=r"stride 16 should return scores of shape \(2, 3, 4, 4\)"):
        FCN(num_classes=3, widths=WIDTHS, head_width=4, stride=16, fusion=Forgets)(images())


def test_grow_fcn_copies_every_shared_parameter_and_keeps_the_new_fusion():
    torch.manual_seed(0)
    fcn32 = FCN(num_classes=3, widths=WIDTHS, head_width=4)
    with torch.no_grad():
        for p in fcn32.parameters():
            p.add_(torch.randn_like(p))  # "trained": differs from a fresh initialization
    fcn16 = grow_fcn(fcn32, NearestFusion)
    assert fcn16.stride == 16 and isinstance(fcn16.fuse_pool4, NearestFusion)
    old, new = fcn32.state_dict(), fcn16.state_dict()
    for key, value in old.items():
        torch.testing.assert_close(new[key], value, rtol=0, atol=0)
        assert new[key].data_ptr() != value.data_ptr(), "the grown network must not share storage"
    assert {k for k in new if k not in old} == {k for k in new if k.startswith("fuse_pool4.")}

    fcn8 = grow_fcn(fcn16)  # reuses the fusion class
    assert fcn8.stride == 8 and isinstance(fcn8.fuse_pool3, NearestFusion)
    for key, value in fcn16.state_dict().items():
        torch.testing.assert_close(fcn8.state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="finest"):
        grow_fcn(fcn8)
    with pytest.raises(TypeError):
        grow_fcn(nn.Conv2d(1, 1, 1))


def test_grown_fcn_with_zero_skip_scores_predicts_from_the_coarse_scores_only():
    # with the new score layer at zero the skip contributes nothing: the pool4 features can change freely
    fcn32 = FCN(num_classes=3, widths=WIDTHS, head_width=4).eval()
    fcn16 = grow_fcn(fcn32, NearestFusion).eval()
    nn.init.zeros_(fcn16.fuse_pool4.score.weight)
    nn.init.zeros_(fcn16.fuse_pool4.score.bias)
    x = images()
    coarse = fcn32.score(fcn32.head(fcn32.encoder(x).pooled[4]))
    nearest = F.interpolate(coarse, scale_factor=2, mode="nearest")
    ref = F.conv_transpose2d(nearest, bilinear_kernel(32, 3), stride=16, padding=8)
    torch.testing.assert_close(fcn16(x), ref, rtol=1e-5, atol=1e-5)


def test_segnet_unpools_with_the_encoder_switches():
    calls = []

    def recording_unpool(values, switches, output_size):
        calls.append((tuple(values.shape), tuple(switches.shape), tuple(output_size)))
        return library_unpool(values, switches, output_size)

    net = SegNetStyle(num_classes=4, widths=WIDTHS, unpool=recording_unpool)
    out = net(images(size=64))
    assert out.shape == (2, 4, 64, 64)
    sizes = [64 // 2**i for i in range(5)]
    expected_in = [WIDTHS[4]] + list(WIDTHS[3::-1])  # each decoder hands the next the narrower width
    assert calls == [((2, c, s // 2, s // 2), (2, c, s // 2, s // 2), (s, s)) for c, s in zip(expected_in, sizes[::-1])]
    out.mean().backward()
    assert net.encoder.stages[0][0].weight.grad.abs().sum() > 0


def unpool_by_scatter(values, switches, output_size):
    """Max-unpooling written out: each value goes to the flat position its switch names, zeros elsewhere."""
    n, c = values.shape[:2]
    out = torch.zeros(n, c, output_size[0] * output_size[1], dtype=values.dtype)
    return out.scatter_(2, switches.flatten(2), values.flatten(2)).view(n, c, *output_size)


@pytest.mark.parametrize("widths, size", [(WIDTHS, (64, 64)), ((3, 3, 4, 4, 4), (64, 96))])
def test_segnet_forward_unpools_its_own_decoder_output_at_the_encoders_switches(widths, size):
    # values of the wrong origin (the encoder's pooled features instead of the decoder's output) have
    # the right shape at every stage, so only values can tell them apart; two widths and image shapes
    received = []

    def recording_unpool(values, switches, output_size):
        received.append((values, switches, tuple(output_size)))
        return library_unpool(values, switches, output_size)

    net = randomised(SegNetStyle(num_classes=3, widths=widths, unpool=recording_unpool), seed=size[1])
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        # by hand: the encoder's stages with max pooling that keeps its argmax, the head, then per
        # stage from the deepest: unpool at that stage's switches, that stage's decoder block
        y, features, switches = x, [], []
        for stage in net.encoder.stages:
            features.append(stage(y))
            y, idx = F.max_pool2d(features[-1], 2, return_indices=True)
            switches.append(idx)
        y = net.head(y)
        decoded = []
        for i in reversed(range(5)):
            decoded.append(y)
            y = net.decoder[i](unpool_by_scatter(y, switches[i], features[i].shape[-2:]))
        expected = net.score(y)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert len(received) == 5
    for (values, sw, output_size), i, y in zip(received, reversed(range(5)), decoded):
        assert torch.equal(sw, switches[i]), f"stage {i} unpooled with switches that are not its own pooling's"
        assert output_size == tuple(features[i].shape[-2:])
        torch.testing.assert_close(values, y, rtol=1e-10, atol=1e-10)  # what is unpooled is the decoder's own


def test_segnet_and_unet_report_wrong_pieces():
    with pytest.raises(ValueError, match="unpool"):
        SegNetStyle()
    with pytest.raises(ValueError, match="block"):
        UNet()
    bad = SegNetStyle(num_classes=2, widths=WIDTHS, unpool=lambda v, s, size: v)
    with pytest.raises(ValueError, match=r"unpool should return a tensor of shape \(2, 6, 4, 4\)"):
        bad(images(size=64))

    class Shrinks(NearestBlock):
        def forward(self, x, skip):
            return super().forward(x, skip)[..., :-1]

    with pytest.raises(ValueError, match=r"decoder block 4 should return a tensor of shape \(2, 6, 4, 4\)"):
        UNet(num_classes=2, widths=WIDTHS, head_width=3, block=Shrinks)(images(size=64))


def test_unet_feeds_each_block_the_same_resolution_features():
    seen = []

    class Recorder(NearestBlock):
        def __init__(self, in_channels, skip_channels, out_channels):
            super().__init__(in_channels, skip_channels, out_channels)
            self.channels = (in_channels, skip_channels, out_channels)

        def forward(self, x, skip):
            seen.append((self.channels, tuple(x.shape[-2:]), tuple(skip.shape[-2:])))
            return super().forward(x, skip)

    net = UNet(num_classes=5, widths=WIDTHS, head_width=7, block=Recorder)
    out = net(images(size=64, dtype=torch.float32))
    assert out.shape == (2, 5, 64, 64)
    ins = WIDTHS[1:] + (7,)
    expected = [((ins[i], WIDTHS[i], WIDTHS[i]), (64 // 2 ** (i + 1),) * 2, (64 // 2**i,) * 2) for i in reversed(range(5))]
    assert seen == expected
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_models_run_in_float64_too():
    x = images(n=1, size=32, dtype=torch.float64)
    for net in (
        FCN(num_classes=3, widths=WIDTHS, head_width=4, stride=8, fusion=NearestFusion),
        SegNetStyle(num_classes=3, widths=WIDTHS, unpool=library_unpool),
        UNet(num_classes=3, widths=WIDTHS, head_width=4, block=NearestBlock),
    ):
        out = net.double().eval()(x)
        assert out.dtype == torch.float64 and out.shape == (1, 3, 32, 32)

