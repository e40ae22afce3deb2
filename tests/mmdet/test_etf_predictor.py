"""ETFPredictor: the fixed ETF classifier in mmdet's ``cls_predictor_cfg``."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import etf_plugin  # noqa: F401  (registers the mmdet components)
from etf_plugin.functional import etf_gram_error, simplex_etf
from etf_plugin.mmdet import ETFPredictor
from etf_plugin.models.heads import ETFHead


def build_bbox_head(num_classes=4, fc_out_channels=16, **predictor):
    """mmdet's standard Shared2FCBBoxHead with the ETF classifier + DR."""
    return MODELS.build(
        dict(
            type='Shared2FCBBoxHead',
            in_channels=8,
            fc_out_channels=fc_out_channels,
            roi_feat_size=7,
            num_classes=num_classes,
            cls_predictor_cfg=dict(type='ETFPredictor', **predictor),
            loss_cls=dict(type='DotRegressionLoss')))


def test_vertices_are_etfheads():
    predictor = MODELS.build(
        dict(type='ETFPredictor', in_features=16, out_features=5, seed=3))
    assert isinstance(predictor, ETFPredictor)
    # one source of truth: the same vertices as ETFHead and simplex_etf
    head = ETFHead(num_classes=5, in_channels=16, seed=3)
    assert torch.equal(predictor.etf_vectors, head.etf_vectors)
    assert torch.equal(predictor.etf_vectors, simplex_etf(5, 16, seed=3))
    assert etf_gram_error(predictor.etf_vectors) < 1e-6
    assert 'etf_vectors' in predictor.state_dict()
    assert not any('etf' in name for name, _ in predictor.named_parameters())


def test_outputs_cosines():
    predictor = ETFPredictor(in_features=16, out_features=5)
    x = torch.randn(6, 16)
    out = predictor(x)
    expected = F.cosine_similarity(
        x[:, None, :], predictor.etf_vectors[None], dim=2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(predictor(3.0 * x), out)
    # a zero feature gives zero cosines, never NaN (ETFHead's epsilon)
    assert torch.equal(predictor(torch.zeros(1, 16)), torch.zeros(1, 5))
    # a feature on vertex k has cosine 1 with it and -1/(K-1) with others
    on_vertex = predictor(predictor.etf_vectors[[2]])
    torch.testing.assert_close(on_vertex[0, 2], torch.tensor(1.0))
    torch.testing.assert_close(on_vertex[0, [0, 1, 3, 4]],
                               torch.full((4, ), -0.25))


def test_too_narrow_features_need_a_projection():
    with pytest.raises(ValueError, match='proj_features=4'):
        ETFPredictor(in_features=3, out_features=5)
    predictor = ETFPredictor(in_features=3, out_features=5, proj_features=4)
    assert predictor.etf_vectors.shape == (5, 4)
    x = torch.randn(6, 3, requires_grad=True)
    predictor(x).sum().backward()
    assert predictor.proj.weight.grad.abs().sum() > 0
    assert x.grad is not None


def test_in_bbox_head_has_background_vertex_and_survives_init():
    head = build_bbox_head(num_classes=4, with_bn=True)
    fc_cls = head.fc_cls
    assert isinstance(fc_cls, ETFPredictor)
    # 4 classes + background; mmdet's background is the last index
    assert (fc_cls.in_features, fc_cls.out_features) == (16, 5)
    before = fc_cls.etf_vectors.clone()
    head.init_weights()  # BBoxHead's Normal(std=0.01) override of fc_cls
    assert torch.equal(fc_cls.etf_vectors, before)
    assert torch.equal(fc_cls.bn.weight, torch.ones(16))
    assert torch.equal(fc_cls.bn.bias, torch.zeros(16))
    cls_score, bbox_pred = head(torch.randn(3, 8, 7, 7))
    assert cls_score.shape == (3, 5) and bbox_pred.shape == (3, 16)
    assert cls_score.abs().max() <= 1 + 1e-6


def test_refuses_a_mismatched_checkpoint():
    predictor = ETFPredictor(in_features=16, out_features=5)
    other = ETFPredictor(in_features=16, out_features=6)
    with pytest.raises(ValueError, match='does not match the checkpoint'):
        predictor.load_state_dict(other.state_dict())
    same_shape = ETFPredictor(in_features=16, out_features=5, seed=1)
    predictor.load_state_dict(same_shape.state_dict())
    assert torch.equal(predictor.etf_vectors, same_shape.etf_vectors)
