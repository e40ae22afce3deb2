"""RoIClassifierCheckHook: num_classes against the data, ETF predictor
against its loss, with the fix in the message."""
import logging
from types import SimpleNamespace

import pytest
import torch.nn as nn
from mmdet.registry import HOOKS, MODELS

import etf_plugin  # noqa: F401  (registers the mmdet components)
from etf_plugin.det import RoIClassifierCheckHook


def roi_head(num_classes=6, predictor='ETFObjectnessPredictor',
             loss='ETFObjectnessLoss', stages=1):
    bbox_head = dict(
        type='Shared2FCBBoxHead',
        in_channels=8,
        fc_out_channels=16,
        roi_feat_size=7,
        num_classes=num_classes,
        cls_predictor_cfg=dict(type=predictor),
        loss_cls=dict(type=loss))
    if loss == 'SeesawLoss':
        bbox_head['loss_cls']['num_classes'] = num_classes
    model = nn.Module()
    model.roi_head = nn.Module()
    if stages == 1:
        model.roi_head.bbox_head = MODELS.build(bbox_head)
    else:
        model.roi_head.bbox_head = nn.ModuleList(
            MODELS.build(bbox_head) for _ in range(stages))
    return model


def fake_runner(model, classes=6):
    dataset = SimpleNamespace(
        metainfo=dict(classes=tuple(f'c{i}' for i in range(classes))))
    loader = SimpleNamespace(dataset=dataset)
    return SimpleNamespace(
        model=model,
        train_dataloader=loader,
        val_loop=SimpleNamespace(dataloader=loader),
        test_loop=SimpleNamespace(dataloader=loader),
        logger=logging.getLogger('test'))


def test_registered_in_mmdet():
    assert isinstance(HOOKS.build(dict(type='RoIClassifierCheckHook')),
                      RoIClassifierCheckHook)


@pytest.mark.parametrize('stage', ['before_train', 'before_val',
                                   'before_test'])
def test_num_classes_against_every_split(stage):
    hook = RoIClassifierCheckHook()
    getattr(hook, stage)(fake_runner(roi_head(6), classes=6))
    # one class more in the data: its last class would be background
    with pytest.raises(ValueError,
                       match=r'model.roi_head.bbox_head has num_classes=6, '
                       r'but the \w+ set \w+ has 7 classes \(c0, .*\)\. Set '
                       r'model.roi_head.bbox_head.num_classes=7'):
        getattr(hook, stage)(fake_runner(roi_head(6), classes=7))
    with pytest.raises(ValueError, match='num_classes=5'):
        getattr(hook, stage)(fake_runner(roi_head(6), classes=5))


def test_every_cascade_stage_is_named():
    hook = RoIClassifierCheckHook()
    with pytest.raises(ValueError,
                       match=r'model.roi_head.bbox_head\[0\].num_classes=4'):
        hook.before_train(fake_runner(roi_head(6, stages=3), classes=4))


def test_a_mmdet_head_is_checked_too_but_never_counts_etf_vertices():
    hook = RoIClassifierCheckHook()
    linear = roi_head(6, predictor='Linear', loss='CrossEntropyLoss')
    with pytest.raises(ValueError, match='num_classes=6'):
        hook.before_train(fake_runner(linear, classes=5))
    # ETFPredictor's classifier has K + 1 vertices (a `num_classes` of 7):
    # only the bbox head's own num_classes counts
    background = roi_head(6, predictor='ETFPredictor',
                          loss='DotRegressionLoss')
    assert background.roi_head.bbox_head.fc_cls.classifier.num_classes == 7
    hook.before_train(fake_runner(background, classes=6))


def test_unnamed_classes_only_warn(caplog):
    runner = fake_runner(roi_head(6))
    runner.train_dataloader = SimpleNamespace(
        dataset=SimpleNamespace(metainfo={}))
    with caplog.at_level(logging.WARNING, logger='test'):
        RoIClassifierCheckHook().before_train(runner)
    assert 'names no classes' in caplog.text


@pytest.mark.parametrize('predictor,loss,fix', [
    ('ETFObjectnessPredictor', 'CrossEntropyLoss',
     "loss_cls=dict\\(_delete_=True, type='ETFObjectnessLoss'\\)"),
    ('ETFObjectnessPredictor', 'DotRegressionLoss',
     "type='ETFObjectnessLoss'"),
    ('ETFPredictor', 'ETFObjectnessLoss',
     "cls_predictor_cfg=dict\\(type='ETFObjectnessPredictor'\\)"),
    ('Linear', 'ETFObjectnessLoss',
     "cls_predictor_cfg=dict\\(type='ETFObjectnessPredictor'\\)"),
    ('Linear', 'DotRegressionLoss',
     "cls_predictor_cfg=dict\\(type='ETFPredictor'\\)"),
])
def test_predictor_and_loss_must_pair(predictor, loss, fix):
    model = roi_head(6, predictor=predictor, loss=loss)
    with pytest.raises(ValueError, match=fix):
        RoIClassifierCheckHook().before_run(fake_runner(model))


@pytest.mark.parametrize('predictor,loss', [
    ('ETFObjectnessPredictor', 'ETFObjectnessLoss'),
    ('ETFPredictor', 'DotRegressionLoss'),
    ('Linear', 'CrossEntropyLoss'),
    ('Linear', 'SeesawLoss'),
])
def test_right_pairs_pass(predictor, loss):
    RoIClassifierCheckHook().before_run(
        fake_runner(roi_head(6, predictor=predictor, loss=loss)))
