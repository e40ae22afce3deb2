import pytest
import torch
from mmpretrain.registry import MODELS

import etf_plugin  # noqa: F401


def test_resnet32_shapes_and_size():
    net = MODELS.build(dict(type='CifarResNet'))
    n_params = sum(p.numel() for p in net.parameters())
    # He et al. (2016) report 0.46 M parameters for ResNet-32
    assert 0.45e6 < n_params < 0.47e6
    out = net(torch.randn(2, 3, 32, 32))
    assert len(out) == 1 and out[0].shape == (2, 64, 8, 8)
    wide = MODELS.build(
        dict(type='CifarResNet', base_channels=32, out_indices=(0, 1, 2)))
    shapes = [o.shape for o in wide(torch.randn(1, 3, 32, 32))]
    assert shapes == [(1, 32, 32, 32), (1, 64, 16, 16), (1, 128, 8, 8)]
    gray = MODELS.build(dict(type='CifarResNet', depth=8, in_channels=1))
    assert gray(torch.randn(1, 1, 8, 8))[0].shape == (1, 64, 2, 2)


@pytest.mark.parametrize('depth', [7, 33, 2])
def test_resnet32_bad_depth(depth):
    with pytest.raises(ValueError, match='6n \\+ 2'):
        MODELS.build(dict(type='CifarResNet', depth=depth))


def test_old_name_builds_the_same_network_with_a_warning():
    """Configs and checkpoints of 0.1.0 name the backbone ResNet32_CIFAR."""
    torch.manual_seed(0)
    new = MODELS.build(dict(type='CifarResNet', in_channels=1))
    with pytest.warns(DeprecationWarning, match="type='CifarResNet'"):
        old = MODELS.build(dict(type='ResNet32_CIFAR', in_channels=1))
    old.load_state_dict(new.state_dict(), strict=True)
    x = torch.randn(2, 1, 8, 8)
    new.eval(), old.eval()
    assert torch.equal(new(x)[0], old(x)[0])


def test_wrong_channels_are_refused_not_converted():
    """Turning colour images to grey is the data pipeline's job (the digits
    test pipeline does it); the backbone names it instead of averaging."""
    gray = MODELS.build(dict(type='CifarResNet', depth=8, in_channels=1))
    with pytest.raises(ValueError, match=r'in_channels=1\) got input of '
                       r'shape \(2, 3, 8, 8\).*RandomGrayscale'):
        gray(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r'takes \(N, 3, H, W\)'):
        MODELS.build(dict(type='CifarResNet', depth=8))(torch.randn(3, 8, 8))
