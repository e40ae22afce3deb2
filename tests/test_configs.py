"""Every runnable config under configs/ parses, builds its model and
datasets, and runs a forward pass (MMPretrain configs: a classification
forward; MMDetection configs, ``default_scope='mmdet'``: a detector forward
through the data preprocessor)."""
import glob
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from helpers import REPO_ROOT

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def test_configs_found():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(path)
    scope = cfg.default_scope
    # MMDetection configs opt in to the adapter; etf_plugin alone does not
    # import mmdet
    plugin = 'etf_plugin.det' if scope == 'mmdet' else 'etf_plugin'
    assert cfg.custom_imports == dict(
        imports=[plugin], allow_failed_imports=False)
    # scoped, so that no later test inherits this config's default scope
    with DefaultScope.overwrite_default_scope(scope):
        build_and_run(cfg, scope, path)


def build_and_run(cfg, scope, path):
    registry = importlib.import_module(f'{scope}.registry')
    MODELS, DATASETS = registry.MODELS, registry.DATASETS
    if scope == 'mmdet':
        num_classes = run_detector(cfg, MODELS)
    else:
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.eval()
        pre = cfg.model.get('data_preprocessor',
                            cfg.get('data_preprocessor'))
        channels = len(pre['mean'])
        size = 8 if 'digits' in path else (32 if 'cifar' in path else 64)
        with torch.no_grad():
            logits = model(torch.randn(2, channels, size, size), mode='tensor')
        num_classes = cfg.model.head.num_classes
        assert logits.shape == (2, num_classes)

    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        # CIFAR/ImageNet/LVIS files are absent here: build without loading
        dataset = DATASETS.build(lazy(cfg[split].dataset))
        assert len(dataset.metainfo['classes']) == num_classes


def run_detector(cfg, MODELS):
    """Build an MMDetection config's detector and run a 'tensor' forward of
    two small images through its data preprocessor, RPN (with the real mmcv
    NMS) and RoI head (RoIAlign). Returns the number of object classes."""
    from mmdet.structures import DetDataSample

    cfg.model.backbone.init_cfg = None  # no ImageNet weights download
    cfg.model.test_cfg.rpn.max_per_img = 100  # LVIS heads are wide: 2 x 100
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    shape = (96, 128)
    data = model.data_preprocessor(
        dict(
            inputs=[torch.randint(0, 256, (3, *shape), dtype=torch.uint8)] * 2,
            data_samples=[
                DetDataSample(
                    metainfo=dict(
                        img_shape=shape, ori_shape=shape,
                        scale_factor=(1., 1.))) for _ in range(2)
            ]), False)
    with torch.no_grad():
        (cls_score, bbox_pred), = model(**data, mode='tensor')
    bbox_head = model.roi_head.bbox_head
    num_classes = bbox_head.num_classes
    # one score per class plus the background (or what the loss declares,
    # e.g. Seesaw's K + 2, the ETF objectness predictor's K + 1),
    # class-wise box deltas
    loss_cls = bbox_head.loss_cls
    channels = loss_cls.get_cls_channels(num_classes) if getattr(
        loss_cls, 'custom_cls_channels', False) else num_classes + 1
    assert cls_score.shape[0] == bbox_pred.shape[0] > 0
    assert cls_score.shape[1] == channels
    assert bbox_pred.shape[1] == 4 * num_classes
    assert torch.isfinite(cls_score).all()
    return num_classes


def lazy(dataset_cfg):
    """A copy of a dataset config with ``lazy_init=True`` at every level of
    wrapping, so that nothing is read or downloaded."""
    dataset_cfg = dataset_cfg.copy()
    dataset_cfg['lazy_init'] = True
    if 'dataset' in dataset_cfg:
        dataset_cfg['dataset'] = lazy(dataset_cfg['dataset'])
    return dataset_cfg
