"""Every runnable config under configs/ parses, builds its model and
datasets, and runs a forward pass."""
import glob
import importlib
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import REPO_ROOT

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


def test_configs_found():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_config_builds_and_runs(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(
        imports=['etf_plugin'], allow_failed_imports=False)
    scope = cfg.default_scope
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry')
    MODELS, DATASETS = registry.MODELS, registry.DATASETS
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    pre = cfg.model.get('data_preprocessor', cfg.get('data_preprocessor'))
    channels = len(pre['mean'])
    size = 8 if 'digits' in path else (32 if 'cifar' in path else 64)
    with torch.no_grad():
        logits = model(torch.randn(2, channels, size, size), mode='tensor')
    assert logits.shape == (2, cfg.model.head.num_classes)

    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        # CIFAR/ImageNet files are absent here: build without loading them
        dataset = DATASETS.build(lazy(cfg[split].dataset))
        assert len(dataset.metainfo['classes']) == cfg.model.head.num_classes


def lazy(dataset_cfg):
    """A copy of a dataset config with ``lazy_init=True`` at every level of
    wrapping, so that nothing is read or downloaded."""
    dataset_cfg = dataset_cfg.copy()
    dataset_cfg['lazy_init'] = True
    if 'dataset' in dataset_cfg:
        dataset_cfg['dataset'] = lazy(dataset_cfg['dataset'])
    return dataset_cfg
