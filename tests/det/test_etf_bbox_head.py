"""``ETFBBoxHead``: mmdet's Shared2FCBBoxHead with the ETF + objectness RoI
classifier, built from one ``type``; the retired names and checkpoints."""
import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import HOOKS, MODELS
from mmengine.registry import DefaultScope

import etf_plugin.det  # noqa: F401  (registers the mmdet components)
from etf_plugin.det import (ETFBBoxHead, ETFObjectnessLoss,
                            ETFObjectnessPredictor)
from etf_plugin.functional import etf_gram_error, simplex_etf
from etf_plugin.models.heads import ETFHead
from etf_plugin.models.utils import ETFClassifier


def build_bbox_head(num_classes=4, fc_out_channels=16, **options):
    return MODELS.build(
        dict(
            type='ETFBBoxHead',
            in_channels=8,
            fc_out_channels=fc_out_channels,
            roi_feat_size=7,
            num_classes=num_classes,
            **options))


def test_one_type_builds_predictor_and_loss_together():
    head = build_bbox_head(num_classes=4, seed=3, dr_weight=2.0,
                           class_balanced=False, logit_scale=7.0)
    assert isinstance(head, ETFBBoxHead)
    assert isinstance(head.fc_cls, ETFObjectnessPredictor)
    assert isinstance(head.loss_cls, ETFObjectnessLoss)
    assert (head.loss_cls.dr_weight, head.loss_cls.class_balanced,
            head.loss_cls.logit_scale) == (2.0, False, 7.0)
    assert head.custom_cls_channels and head.custom_activation
    # the defaults are the tuned values of docs/mmdet.md
    default = build_bbox_head()
    assert (default.loss_cls.dr_weight, default.loss_cls.class_balanced,
            default.loss_cls.logit_scale) == (10.0, True, 10.0)
    assert default.fc_cls.classifier.bn is not None
    # the linear head's loss_weight, inherited from a base config, is kept
    weighted = build_bbox_head(loss_cls=dict(
        type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0))
    assert weighted.loss_cls.loss_weight == 2.0


@pytest.mark.parametrize('options,match', [
    (dict(loss_cls=dict(type='SeesawLoss', num_classes=4)),
     "loss_cls=dict\\(_delete_=True, type='CrossEntropyLoss'"),
    (dict(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True)),
     'softmax CrossEntropyLoss'),
    (dict(loss_cls=dict(type='CrossEntropyLoss', class_weight=[1.0] * 5)),
     'softmax CrossEntropyLoss'),
    (dict(cls_predictor_cfg=dict(type='NormedLinear')),
     'builds its own RoI classifier.*set seed, proj_channels or with_bn'),
])
def test_what_it_would_replace_is_refused_not_ignored(options, match):
    with pytest.raises(ValueError, match=match):
        build_bbox_head(**options)


def test_vertices_are_the_one_etf():
    head = build_bbox_head(num_classes=4, seed=3, with_bn=False)
    module = head.fc_cls
    # one ETF module and one construction: ETFHead's, simplex_etf's
    assert isinstance(module.classifier, ETFClassifier)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        etf_head = ETFHead(num_classes=4, in_channels=16, seed=3)
    assert torch.equal(module.etf_vectors, etf_head.etf_vectors)
    assert torch.equal(module.etf_vectors, simplex_etf(4, 16, seed=3))
    assert etf_gram_error(module.etf_vectors) < 1e-6
    assert 'fc_cls.classifier.etf_vectors' in head.state_dict()
    assert not any('etf' in name for name, _ in head.named_parameters())


def test_predictor_outputs_cosines_then_objectness():
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
    # a zero feature gives zero cosines, never NaN (ETFHead's epsilon)
    assert torch.equal(predictor(torch.zeros(1, 16))[:, :4],
                       torch.zeros(1, 4))


def test_too_narrow_features_name_the_fix():
    # 5 object classes: 4 dimensions
    with pytest.raises(ValueError, match=r'fc_out_channels=4 or more\) or '
                       r"project first: bbox_head=dict\(type='ETFBBoxHead', "
                       r'proj_channels=4\)'):
        build_bbox_head(num_classes=5, fc_out_channels=3)
    head = build_bbox_head(num_classes=5, fc_out_channels=3, proj_channels=4)
    assert head.fc_cls.etf_vectors.shape == (5, 4)
    cls_score, _ = head(torch.randn(6, 8, 7, 7))
    cls_score.sum().backward()
    assert head.fc_cls.classifier.proj.weight.grad.abs().sum() > 0


def test_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 object classes'):
        build_bbox_head(num_classes=1)


def test_survives_mmdet_init():
    head = build_bbox_head(num_classes=4)
    fc_cls = head.fc_cls
    # K + 1 outputs; mmdet's background is the last index
    assert (fc_cls.in_features, fc_cls.out_features) == (16, 5)
    before = fc_cls.etf_vectors.clone()
    head.init_weights()  # BBoxHead's Normal(std=0.01) override of fc_cls
    assert torch.equal(fc_cls.etf_vectors, before)
    assert torch.equal(fc_cls.classifier.bn.weight, torch.ones(16))
    assert torch.equal(fc_cls.classifier.bn.bias, torch.zeros(16))
    # mmdet's Normal(std=0.01) init, bias 0: p(object) about 1/2 at first
    assert torch.equal(fc_cls.objectness.bias, torch.zeros(1))
    assert fc_cls.objectness.weight.std() < 0.05
    cls_score, bbox_pred = head(torch.randn(3, 8, 7, 7))
    assert cls_score.shape == (3, 5) and bbox_pred.shape == (3, 16)


def test_checkpoints_of_the_three_key_config_load():
    # the keys a Shared2FCBBoxHead with cls_predictor_cfg=
    # ETFObjectnessPredictor saved, and those from before the predictor
    # held an ETFClassifier (etf_vectors, bn.* at the predictor's level)
    head = build_bbox_head(num_classes=4, seed=1)
    with torch.no_grad():
        head.fc_cls.classifier.bn.weight.fill_(2.0)
    state = head.state_dict()
    assert {'fc_cls.classifier.etf_vectors', 'fc_cls.classifier.bn.weight',
            'fc_cls.objectness.weight'} <= set(state)
    legacy = {
        key.replace('fc_cls.classifier.', 'fc_cls.'): value
        for key, value in state.items()
    }
    assert 'fc_cls.etf_vectors' in legacy and 'fc_cls.bn.weight' in legacy
    for checkpoint in (state, legacy):
        other = build_bbox_head(num_classes=4, seed=5)
        other.load_state_dict(dict(checkpoint))
        for key, value in state.items():
            assert torch.equal(other.state_dict()[key], value), key


def test_refuses_a_checkpoint_of_another_shape():
    head = build_bbox_head(num_classes=4)
    wider = build_bbox_head(num_classes=5)
    with pytest.raises(ValueError,
                       match=r'\(5, 16\) but ETFBBoxHead builds '
                       r'\(4, 16\).*does not match the checkpoint'):
        head.load_state_dict(wider.state_dict(), strict=False)
    # a checkpoint of the retired background-vertex design (K + 1 vertices)
    background = ETFClassifier(5, 16, with_bn=False)
    state = {'fc_cls.' + key: value
             for key, value in background.state_dict().items()}
    with pytest.raises(ValueError, match='look like a checkpoint of '
                       "ETFPredictor.*bbox_head=dict\\(type='ETFBBoxHead'\\)"):
        head.load_state_dict(state, strict=False)
    # a corrupted ETF is refused by ETFClassifier's check
    state = head.state_dict()
    state['fc_cls.classifier.etf_vectors'] = torch.zeros(4, 16)
    with pytest.raises(ValueError, match='not a simplex ETF'):
        head.load_state_dict(state)


@pytest.mark.parametrize('registry,name,match', [
    (MODELS, 'ETFPredictor', "background-as-a-vertex.*type='ETFBBoxHead'"),
    (MODELS, 'DotRegressionLoss',
     "type='mmpretrain.DotRegressionLoss'.*background-as-a-vertex.*"
     'ETFBBoxHead'),
    (MODELS, 'ETFObjectnessPredictor', "type='ETFBBoxHead'"),
    (MODELS, 'ETFObjectnessLoss', "type='ETFBBoxHead'"),
    (HOOKS, 'RoIClassifierCheckHook', "type='NumClassCheckHook'"),
])
def test_retired_names_name_their_replacement(registry, name, match):
    with pytest.raises(ValueError, match=match):
        registry.build(dict(type=name))


def test_the_retired_three_key_config_names_the_head():
    # the configs of etf_plugin 0.1.0: a predictor and its loss on mmdet's
    # standard head (the loss is built first)
    for predictor, loss in (('ETFObjectnessPredictor', 'ETFObjectnessLoss'),
                            ('ETFPredictor', 'DotRegressionLoss')):
        with pytest.raises(ValueError, match="type='ETFBBoxHead'"):
            MODELS.build(
                dict(type='Shared2FCBBoxHead', in_channels=8,
                     fc_out_channels=16, num_classes=4,
                     cls_predictor_cfg=dict(type=predictor),
                     loss_cls=dict(type=loss)))


def fake_runner(model, classes):
    dataset = SimpleNamespace(
        metainfo=dict(classes=tuple(f'c{i}' for i in range(classes))))
    loader = SimpleNamespace(dataset=dataset)
    return SimpleNamespace(
        model=model, train_dataloader=loader, val_dataloader=loader,
        logger=logging.getLogger('test'))


def test_mmdets_num_class_check_hook_counts_the_head_right():
    # the ETF classifier's num_classes is K (the object classes), so
    # mmdet's own hook needs no replacement
    model = nn.Module()
    model.roi_head = nn.Module()
    model.roi_head.bbox_head = build_bbox_head(num_classes=6)
    hook = HOOKS.build(dict(type='NumClassCheckHook'))
    hook.before_train_epoch(fake_runner(model, classes=6))
    hook.before_val_epoch(fake_runner(model, classes=6))
    # one class more in the data: its last class would be background
    with pytest.raises(AssertionError, match=r'\(6\) in ETFBBoxHead'):
        hook.before_train_epoch(fake_runner(model, classes=7))
    with pytest.raises(AssertionError, match=r'\(6\) in ETFBBoxHead'):
        hook.before_val_epoch(fake_runner(model, classes=5))
