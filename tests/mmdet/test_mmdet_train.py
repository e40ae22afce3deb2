"""End to end with MMDetection's own tooling: its packaged tools/train.py
trains the tiny ETF + DR Faster R-CNN on synthetic long-tailed shapes (real
mmcv RoIAlign and NMS, CPU), the checkpoint loads under torch's safe
unpickler, and mmdet's Runner reloads it and evaluates it with CocoMetric."""
import json
import os.path as osp
import runpy
import sys

import mmdet
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO_ROOT
from etf_plugin.functional import simplex_etf

CONFIG = osp.join(REPO_ROOT, 'configs', 'mmdet',
                  'faster-rcnn_r18-tiny_fpn_etf-dr_synthetic-shapes-lt.py')
MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                       'train.py')
ETF_KEY = 'roi_head.bbox_head.fc_cls.etf_vectors'
# One epoch (a few iterations) on a dozen training images, no validation
# during training; the test set has two instances of every class.
SMALL = {
    'train_cfg.max_epochs': 1,
    'train_cfg.val_interval': 2,
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.logger.interval': 1,
    'train_dataloader.dataset.n_max': 8,
    'train_dataloader.dataset.imbalance_ratio': 0.25,
    'test_dataloader.dataset.n_max': 2,
}


@pytest.fixture
def one_thread():
    # torch's default two threads on two busy cores run ~10x slower here
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_train_checkpoint_reload_evaluate(tmp_path, monkeypatch, one_thread):
    work_dir = str(tmp_path / 'work')
    monkeypatch.setattr(sys, 'argv', [
        MMDET_TRAIN, CONFIG, '--work-dir', work_dir, '--cfg-options',
        *(f'{key}={value}' for key, value in SMALL.items())
    ])
    runpy.run_path(MMDET_TRAIN, run_name='__main__')

    # training logged finite detection losses, including the DR loss_cls
    (scalars, ) = tmp_path.glob('work/*/vis_data/scalars.json')
    logs = [json.loads(line) for line in scalars.read_text().splitlines()]
    train_logs = [log for log in logs if 'loss_cls' in log]
    assert len(train_logs) >= 3
    assert all(0 < log['loss_cls'] < 2 for log in train_logs)

    # the checkpoint loads with torch's safe unpickler (etf_plugin's
    # allow-list), and its ETF is the one simplex_etf builds, bit for bit
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    assert torch.equal(state[ETF_KEY], simplex_etf(7, 64, seed=0))

    # reload as tools/test.py does, into a model whose fresh ETF differs
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(SMALL)
    cfg.model.roi_head.bbox_head.cls_predictor_cfg.seed = 1
    cfg.work_dir = str(tmp_path / 'test')
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    etf = runner.model.roi_head.bbox_head.fc_cls.etf_vectors
    assert torch.equal(etf, state[ETF_KEY])
    assert not torch.equal(etf, simplex_etf(7, 64, seed=1))

    # a real mmdet metric on the synthetic validation set
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    assert 0 <= metrics['coco/bbox_mAP_50'] <= 1
    for name in runner.test_dataloader.dataset.metainfo['classes']:
        assert 0 <= metrics[f'coco/{name}_precision'] <= 1
