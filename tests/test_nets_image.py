import pytest
import torch

from lightning_gen.nets import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from lightning_gen.nets.image import upsampling_plan


@pytest.mark.parametrize("img_size", [8, 16, 28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(img_size, channels):
    g = DCGANGenerator(latent_dim=4, img_size=img_size, channels=channels, base_channels=2)
    d = DCGANDiscriminator(img_size=img_size, channels=channels, base_channels=2)
    x = g(torch.randn(3, 4))
    assert x.shape == (3, channels, img_size, img_size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)
    feats = d.features(x)
    assert len(feats) == d.num_feature_layers >= 1
    assert feats[0].shape[-1] == img_size // 2


def test_min_size_two_gives_8x8_two_blocks():
    assert upsampling_plan(8) == (4, 1)
    assert upsampling_plan(8, min_size=2) == (2, 2)
    d = DCGANDiscriminator(img_size=8, base_channels=4, min_size=2)
    assert d.num_feature_layers == 2
    assert DCGANGenerator(4, img_size=8, base_channels=4, min_size=2)(torch.randn(2, 4)).shape == (2, 1, 8, 8)


def test_mlp_shapes():
    g, d = MLPGenerator(5, 8, 3, hidden=7), MLPDiscriminator(8, 3, hidden=7)
    x = g(torch.randn(2, 5))
    assert x.shape == (2, 3, 8, 8)
    assert d(x).shape == (2,)
    assert [f.shape for f in d.features(x)] == [(2, 7), (2, 7)]


@pytest.mark.parametrize("bad", [7, 100, 3, 512])
def test_unsupported_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="not supported"):
        DCGANGenerator(img_size=bad)


def test_bad_channels():
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3"):
        DCGANDiscriminator(img_size=8, channels=2)


def test_discriminator_features_depth_stops_early():
    from lightning_gen.nets import DCGANDiscriminator, MLPDiscriminator

    torch.manual_seed(0)
    for d in (DCGANDiscriminator(img_size=16, channels=1, base_channels=4), MLPDiscriminator(8, 1, hidden=8)):
        d.eval()
        x = torch.randn(2, 1, d.img_size, d.img_size)
        full = d.features(x)
        first = d.features(x, depth=1)
        assert len(first) == 1 and torch.equal(first[0], full[0]) and len(full) == d.num_feature_layers
