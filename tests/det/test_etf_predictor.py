"""The ETF RoI predictors in mmdet's ``cls_predictor_cfg``:
``ETFObjectnessPredictor`` (K class vertices + objectness logit) and
``ETFPredictor`` (K + 1 vertices, the last the background's)."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import etf_plugin  # noqa: F401  (registers the mmdet components)
from etf_plugin.det import ETFObjectnessPredictor, ETFPredictor
from etf_plugin.functional import etf_gram_error, simplex_etf
from etf_plugin.models.heads import ETFHead
from etf_plugin.models.utils import ETFClassifier

LOSSES = {
    'ETFObjectnessPredictor': dict(type='ETFObjectnessLoss'),
    'ETFPredictor': dict(type='DotRegressionLoss'),
}


def build_bbox_head(predictor='ETFObjectnessPredictor', num_classes=4,
                    fc_out_channels=16, **options):
    """mmdet's standard Shared2FCBBoxHead with an ETF predictor + its
    loss."""
    return MODELS.build(
        dict(
            type='Shared2FCBBoxHead',
            in_channels=8,
            fc_out_channels=fc_out_channels,
            roi_feat_size=7,
            num_classes=num_classes,
            cls_predictor_cfg=dict(type=predictor, **options),
            loss_cls=LOSSES[predictor]))


@pytest.mark.parametrize('predictor,vertices', [
    ('ETFObjectnessPredictor', 4),  # K object classes
    ('ETFPredictor', 5),  # K + background
])
def test_vertices_are_the_one_etf(predictor, vertices):
    module = MODELS.build(
        dict(type=predictor, in_features=16, out_features=5, seed=3))
    # one ETF module and one construction: ETFHead's, simplex_etf's
    assert isinstance(module.classifier, ETFClassifier)
    head = ETFHead(num_classes=vertices, in_channels=16, seed=3)
    assert torch.equal(module.etf_vectors, head.etf_vectors)
    assert torch.equal(module.etf_vectors, simplex_etf(vertices, 16, seed=3))
    assert etf_gram_error(module.etf_vectors) < 1e-6
    assert 'classifier.etf_vectors' in module.state_dict()
    assert not any('etf' in name for name, _ in module.named_parameters())


def test_objectness_predictor_outputs_cosines_then_objectness():
    predictor = ETFObjectnessPredictor(
        in_features=16, out_features=5, with_bn=False)
    x = torch.randn(6, 16)
    out = predictor(x)
    assert out.shape == (6, 5)
    expected = F.cosine_similarity(
        x[:, None, :], predictor.etf_vectors[None], dim=2)
    torch.testing.assert_close(out[:, :4], expected)
    torch.testing.assert_close(out[:, 4], predictor.objectness(x)[:, 0])
    # the objectness is learnable and reads the RoI feature itself
    out[:, 4].sum().backward()
    assert predictor.objectness.weight.grad.abs().sum() > 0
    # a feature on vertex k: cosine 1 with it, -1/(K-1) with the others
    on_vertex = predictor(predictor.etf_vectors[[2]])[0, :4]
    torch.testing.assert_close(on_vertex[2], torch.tensor(1.0))
    torch.testing.assert_close(on_vertex[[0, 1, 3]],
                               torch.full((3, ), -1 / 3))


def test_background_vertex_predictor_outputs_cosines():
    predictor = ETFPredictor(in_features=16, out_features=5)
    x = torch.randn(6, 16)
    torch.testing.assert_close(
        predictor(x),
        F.cosine_similarity(x[:, None, :], predictor.etf_vectors[None],
                            dim=2))
    # a zero feature gives zero cosines, never NaN (ETFHead's epsilon)
    assert torch.equal(predictor(torch.zeros(1, 16)), torch.zeros(1, 5))


@pytest.mark.parametrize('predictor,needed', [
    ('ETFObjectnessPredictor', 4),  # 5 object classes: 4 dimensions
    ('ETFPredictor', 5),  # 6 vertices
])
def test_too_narrow_features_name_the_fix(predictor, needed):
    cls = MODELS.get(predictor)
    with pytest.raises(ValueError, match=rf'fc_out_channels={needed} or '
                       rf'more\) or project first: cls_predictor_cfg=dict\('
                       rf"type='{predictor}', proj_channels={needed}\)"):
        cls(in_features=3, out_features=6)
    # the same from the bbox head's config
    with pytest.raises(ValueError, match='Widen the bbox head'):
        build_bbox_head(predictor, num_classes=5, fc_out_channels=3)
    module = cls(in_features=3, out_features=6, proj_channels=needed)
    assert module.etf_vectors.shape == (needed + 1, needed)
    x = torch.randn(6, 3, requires_grad=True)
    module(x).sum().backward()
    assert module.classifier.proj.weight.grad.abs().sum() > 0


def test_objectness_predictor_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 object classes'):
        ETFObjectnessPredictor(in_features=16, out_features=2)


@pytest.mark.parametrize('predictor', ['ETFObjectnessPredictor',
                                       'ETFPredictor'])
def test_in_bbox_head_survives_mmdet_init(predictor):
    head = build_bbox_head(predictor, num_classes=4, with_bn=True)
    fc_cls = head.fc_cls
    assert type(fc_cls).__name__ == predictor
    # K + 1 outputs either way; mmdet's background is the last index
    assert (fc_cls.in_features, fc_cls.out_features) == (16, 5)
    before = fc_cls.etf_vectors.clone()
    head.init_weights()  # BBoxHead's Normal(std=0.01) override of fc_cls
    assert torch.equal(fc_cls.etf_vectors, before)
    assert torch.equal(fc_cls.classifier.bn.weight, torch.ones(16))
    assert torch.equal(fc_cls.classifier.bn.bias, torch.zeros(16))
    cls_score, bbox_pred = head(torch.randn(3, 8, 7, 7))
    assert cls_score.shape == (3, 5) and bbox_pred.shape == (3, 16)


def test_objectness_starts_undecided():
    head = build_bbox_head('ETFObjectnessPredictor', num_classes=4)
    head.init_weights()
    # mmdet's Normal(std=0.01) init, bias 0: p(object) about 1/2 at first
    assert torch.equal(head.fc_cls.objectness.bias, torch.zeros(1))
    assert head.fc_cls.objectness.weight.std() < 0.05


def test_legacy_keys_are_remapped():
    # a checkpoint of the K + 1 predictor from before it held an
    # ETFClassifier: etf_vectors, bn.* and proj.* at the predictor's level
    new = ETFPredictor(in_features=3, out_features=5, proj_channels=4,
                       with_bn=True, seed=1)
    with torch.no_grad():
        new.classifier.bn.weight.fill_(2.0)
    legacy = {
        key.replace('classifier.', ''): value
        for key, value in new.state_dict().items()
    }
    assert 'etf_vectors' in legacy and 'bn.weight' in legacy
    assert 'proj.weight' in legacy
    loaded = ETFPredictor(in_features=3, out_features=5, proj_channels=4,
                          with_bn=True, seed=0)
    loaded.load_state_dict(legacy)
    for key, value in new.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    # and inside a bbox head, under its prefix (roi_head.bbox_head.fc_cls.)
    head = build_bbox_head('ETFPredictor', num_classes=4, with_bn=True)
    state = {
        key.replace('fc_cls.classifier.', 'fc_cls.'): value
        for key, value in head.state_dict().items()
    }
    assert 'fc_cls.etf_vectors' in state
    other = build_bbox_head('ETFPredictor', num_classes=4, with_bn=True,
                            seed=5)
    other.load_state_dict(state)
    assert torch.equal(other.fc_cls.etf_vectors, head.fc_cls.etf_vectors)


def test_refuses_a_checkpoint_of_another_shape():
    predictor = ETFObjectnessPredictor(in_features=16, out_features=5)
    wider = ETFObjectnessPredictor(in_features=16, out_features=6)
    with pytest.raises(ValueError,
                       match=r'\(5, 16\) but ETFObjectnessPredictor builds '
                       r'\(4, 16\).*does not match the checkpoint'):
        predictor.load_state_dict(wider.state_dict())
    # a checkpoint of the background-vertex design is recognised
    background = ETFPredictor(in_features=16, out_features=5)
    with pytest.raises(ValueError, match='look like a checkpoint of '
                       'ETFPredictor'):
        predictor.load_state_dict(background.state_dict(), strict=False)
    # the same shape loads, and the checkpoint's ETF wins
    same_shape = ETFObjectnessPredictor(in_features=16, out_features=5,
                                        seed=1)
    predictor.load_state_dict(same_shape.state_dict())
    assert torch.equal(predictor.etf_vectors, same_shape.etf_vectors)
    # a corrupted ETF is refused by ETFClassifier's check
    state = same_shape.state_dict()
    state['classifier.etf_vectors'] = torch.zeros(4, 16)
    with pytest.raises(ValueError, match='not a simplex ETF'):
        predictor.load_state_dict(state)
