"""End to end with MMDetection's own tooling: its packaged tools/train.py
trains the tiny Faster R-CNN with the ETF + objectness RoI classifier on
synthetic long-tailed shapes (real mmcv RoIAlign and NMS, CPU), the
checkpoint loads under torch's safe unpickler with its ETF bit-identical,
and mmdet's packaged tools/test.py evaluates it with CocoMetric."""
import json
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from helpers import SHAPES_CONFIG as CONFIG
from helpers import mim_tools
import etf_plugin.det  # noqa: F401  (registers the mmdet components)
from etf_plugin.functional import simplex_etf

TOOLS = mim_tools('mmdet')
ETF_KEY = 'roi_head.bbox_head.fc_cls.classifier.etf_vectors'
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


def run_tool(monkeypatch, name, *args):
    script = osp.join(TOOLS, name)
    monkeypatch.setattr(sys, 'argv', [script, *args])
    runpy.run_path(script, run_name='__main__')


def cfg_options(options):
    return ['--cfg-options', *(f'{key}={value}'
                               for key, value in options.items())]


@pytest.mark.slow
def test_train_then_test_with_mmdets_tools(tmp_path, monkeypatch,
                                           one_thread):
    work_dir = str(tmp_path / 'work')
    # mmdet names its visualizer 'visualizer', and mmengine hands an
    # existing instance of that name (from an earlier test in this process,
    # with its own save_dir) to the runner: a fresh name keeps the logs here
    run_tool(monkeypatch, 'train.py', CONFIG, '--work-dir', work_dir,
             *cfg_options({**SMALL, 'visualizer.name': tmp_path.name}))

    # training logged finite objectness and DR terms and their accuracies
    (scalars, ) = tmp_path.glob('work/*/vis_data/scalars.json')
    logs = [json.loads(line) for line in scalars.read_text().splitlines()]
    train_logs = [log for log in logs if 'loss_cls_classes' in log]
    assert len(train_logs) >= 3
    for log in train_logs:
        assert 0 < log['loss_cls_objectness'] < 2
        assert 0 <= log['loss_cls_classes'] < 2
        assert 0 <= log['acc_objectness'] <= 100

    # the checkpoint loads with torch's safe unpickler (etf_plugin's
    # allow-list), and its ETF is the one simplex_etf builds, bit for bit
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    assert torch.equal(state[ETF_KEY], simplex_etf(6, 64, seed=0))

    # reload as tools/test.py does, into a model whose fresh ETF differs
    other_etf = {
        **SMALL, 'model.roi_head.bbox_head.seed': 1
    }
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(other_etf)
    cfg.work_dir = str(tmp_path / 'reload')
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    etf = runner.model.roi_head.bbox_head.fc_cls.etf_vectors
    assert torch.equal(etf, state[ETF_KEY])
    assert not torch.equal(etf, simplex_etf(6, 64, seed=1))
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    for name in runner.test_dataloader.dataset.metainfo['classes']:
        assert 0 <= metrics[f'coco/{name}_precision'] <= 1

    # mmdet's own test.py, on the same config and checkpoint
    test_dir = tmp_path / 'test'
    run_tool(monkeypatch, 'test.py', CONFIG, checkpoint, '--work-dir',
             str(test_dir), *cfg_options(other_etf))
    (result_file, ) = test_dir.glob('*/*.json')
    tool_metrics = json.loads(result_file.read_text().splitlines()[-1])
    # the same model, so the same numbers as the reload above
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50'):
        assert tool_metrics[key] == pytest.approx(metrics[key])


def test_a_dataset_with_other_classes_is_refused(tmp_path, monkeypatch,
                                                 one_thread):
    # the tool fails before the first iteration (mmdet's NumClassCheckHook
    # in the config), naming both numbers
    with pytest.raises(AssertionError,
                       match=r'`num_classes` \(5\) in ETFBBoxHead .* '
                       r'`classes` 6\) in SyntheticShapes'):
        run_tool(monkeypatch, 'train.py', CONFIG, '--work-dir',
                 str(tmp_path), *cfg_options({
                     **SMALL, 'model.roi_head.bbox_head.num_classes': 5
                 }))
