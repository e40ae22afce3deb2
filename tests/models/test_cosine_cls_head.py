"""CosineClsHead: the learnable cosine control arm on ETFHead's neck."""
import pytest
import torch
from mmpretrain.registry import MODELS

from helpers import data_samples
from etf_plugin.functional.etf import simplex_etf
from etf_plugin.models.heads import CosineClsHead, ETFHead
from etf_plugin.utils import classifier_of


def test_starts_at_the_etf_and_matches_etf_head_there():
    torch.manual_seed(0)
    cosine = CosineClsHead(10, 64, seed=3)
    etf = ETFHead(10, 64, seed=3, loss=dict(type='CrossEntropyLoss'))
    assert torch.allclose(cosine.classifier.weight, simplex_etf(10, 64, 3))
    etf.classifier.bn.load_state_dict(cosine.classifier.bn.state_dict())
    feats = (torch.randn(8, 64), )
    cosine.eval(), etf.eval()
    assert torch.allclose(cosine(feats), etf(feats), atol=1e-5)
    labels = torch.randint(0, 10, (8, ))
    cosine.train(), etf.train()
    assert torch.allclose(cosine.loss(feats, data_samples(labels))['loss'],
                          etf.loss(feats, data_samples(labels))['loss'],
                          atol=1e-5)


def test_rows_are_trained_and_normalised():
    head = CosineClsHead(10, 16, init='normal')
    feats = (torch.randn(32, 16), )
    loss = head.loss(feats, data_samples(torch.randint(0, 10, (32, ))))['loss']
    loss.backward()
    assert head.classifier.weight.grad is not None and head.classifier.weight.grad.abs().sum() > 0
    weight, bias = classifier_of(head)
    assert bias is None
    assert torch.allclose(weight.norm(dim=1), torch.ones(10), atol=1e-5)
    unnormalized = head.unnormalized_features(feats)
    assert torch.allclose(head.pre_logits(feats),
                          unnormalized / unnormalized.norm(dim=1,
                                                           keepdim=True),
                          atol=1e-5)
    scores = head(feats)
    assert scores.abs().max() <= head.logit_scale + 1e-4


def test_cosine_losses_get_unscaled_cosines():
    head = CosineClsHead(10, 16, loss=dict(type='DotRegressionLoss'))
    feats = (torch.randn(4, 16), )
    labels = torch.tensor([0, 1, 2, 3])
    loss = head.loss(feats, data_samples(labels))['loss']
    cos = head.pre_logits(feats) @ head.class_weight().t()
    expected = 0.5 * (cos[torch.arange(4), labels] - 1).pow(2).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_builds_from_config_and_checks_arguments():
    head = MODELS.build(dict(type='CosineClsHead', num_classes=10,
                             in_channels=64, with_bn=False))
    assert head.classifier.bn is None
    with pytest.raises(ValueError, match='init'):
        CosineClsHead(10, 64, init='zeros')
    with pytest.raises(ValueError, match='logit_scale'):
        CosineClsHead(10, 64, logit_scale=0)
    with pytest.raises(ValueError, match='in_channels=64'):
        CosineClsHead(10, 64)((torch.randn(2, 32), ))
