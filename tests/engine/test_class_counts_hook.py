"""ClassCountsHook: the training counts follow the training set the run uses,
reach every consumer, travel in the checkpoint, and fail loudly when absent."""
import os
import os.path as osp
import pickle
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import etf_plugin  # noqa: F401
from helpers import MMPRETRAIN_TOOLS, REPO_ROOT, free_port, run_tool
from etf_plugin.datasets import training_class_counts
from etf_plugin.engine.hooks import ClassCountsHook

SHORT = {
    'train_cfg.max_epochs': 1,
    'train_cfg.val_interval': 1,
    'default_hooks.logger.interval': 1000,
    'visualizer.vis_backends': [dict(type='LocalVisBackend')],
    'log_level': 'WARNING',
}
# A test-only run of a checkpoint: the config keeps no training set.
NO_TRAINING = ('train_dataloader=None', 'train_cfg=None',
               'optim_wrapper=None', 'param_scheduler=None')


def runner_of(config, work_dir, **options):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    cfg.merge_from_dict({
        **SHORT, 'work_dir': str(work_dir),
        'experiment_name': uuid.uuid4().hex, **options
    })
    return Runner.from_cfg(cfg)


def run_python(*args):
    """A tool under this interpreter, from the repository root, on one
    thread; returns its output."""
    return run_tool([sys.executable, *args], timeout=300)


def saved_metrics(work_dir):
    with open(osp.join(work_dir, 'metrics.pkl'), 'rb') as f:
        return pickle.load(f)


@pytest.mark.slow
def test_imbalance_override_reaches_the_loss_and_the_shot_groups(tmp_path):
    runner = runner_of(
        'resnet32_digitslt_la.py', tmp_path,
        **{'train_dataloader.dataset.imbalance_ratio': 1.0})
    runner.train()
    counts = training_class_counts(runner.train_dataloader.dataset, 10)
    assert len(set(counts.tolist())) == 1  # balanced: every class the same
    loss = runner.model.head.loss_module
    assert np.array_equal(loss.class_counts, counts)
    logits = torch.randn(8, 10)
    labels = torch.arange(8)
    # a uniform prior shifts every logit alike: LA is exactly CE
    assert torch.allclose(loss(logits, labels),
                          torch.nn.functional.cross_entropy(logits, labels))
    metrics = runner.val_loop.run()
    assert 'lt/many' in metrics
    assert 'lt/medium' not in metrics and 'lt/few' not in metrics
    checkpoint = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)
    assert checkpoint['meta']['class_counts'] == counts.tolist()


@pytest.fixture(scope='module')
def ce_checkpoint(tmp_path_factory):
    """A CE model trained at ratio 0.02 (counts 124 ... 2)."""
    work_dir = tmp_path_factory.mktemp('ce')
    run_python(
        'tools/train.py', 'configs/resnet32_digitslt_ce.py', '--work-dir',
        str(work_dir), '--cfg-options',
        'train_dataloader.dataset.imbalance_ratio=0.02',
        'train_cfg.max_epochs=1')
    return str(work_dir / 'epoch_1.pth')


@pytest.mark.slow
def test_prior_survives_the_checkpoint_into_a_test_only_run(
        ce_checkpoint, tmp_path):
    saved = torch.load(ce_checkpoint, weights_only=True)['meta']
    counts = saved['class_counts']
    assert counts[0] == 124 and counts[-1] == 2
    # tools/test.py with no training set in the config: the checkpoint's
    # prior, and the same numbers as with the counts given explicitly
    from_checkpoint = tmp_path / 'from_checkpoint'
    run_python('tools/test.py', 'configs/resnet32_digitslt_posthoc_la.py',
               ce_checkpoint, '--work-dir', str(from_checkpoint), '--out',
               str(from_checkpoint / 'metrics.pkl'), '--out-item', 'metrics',
               '--cfg-options', *NO_TRAINING)
    explicit = tmp_path / 'explicit'
    run_python('tools/test.py', 'configs/resnet32_digitslt_posthoc_la.py',
               ce_checkpoint, '--work-dir', str(explicit), '--out',
               str(explicit / 'metrics.pkl'), '--out-item', 'metrics',
               '--cfg-options', *NO_TRAINING,
               f'model.head.class_counts={counts}')
    adjusted = saved_metrics(from_checkpoint)
    assert adjusted == saved_metrics(explicit)
    assert {'lt/many', 'lt/medium', 'lt/few'} <= set(adjusted)
    # the same numbers from 2 processes (dist_test.sh) ...
    dist = tmp_path / 'dist'
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(free_port()),
               PYTHON=sys.executable)
    run_tool(['bash', 'tools/dist_test.sh',
              'configs/resnet32_digitslt_posthoc_la.py', ce_checkpoint, '2',
              '--work-dir', str(dist), '--out', str(dist / 'metrics.pkl'),
              '--out-item', 'metrics', '--cfg-options', *NO_TRAINING],
             env=env, timeout=300)
    assert saved_metrics(dist) == adjusted
    # ... and from MMPretrain's own test.py
    upstream = tmp_path / 'upstream'
    run_python(osp.join(MMPRETRAIN_TOOLS, 'test.py'),
               'configs/resnet32_digitslt_posthoc_la.py', ce_checkpoint,
               '--work-dir', str(upstream), '--out',
               str(upstream / 'metrics.pkl'), '--out-item', 'metrics',
               '--cfg-options', *NO_TRAINING)
    assert saved_metrics(upstream) == adjusted


@pytest.mark.slow
def test_test_only_run_without_any_counts_names_the_fix(
        ce_checkpoint, tmp_path):
    checkpoint = torch.load(ce_checkpoint, weights_only=True)
    del checkpoint['meta']['class_counts']
    stripped = str(tmp_path / 'no_counts.pth')
    torch.save(checkpoint, stripped)
    # run_tool returns stdout + stderr; the message must be on stderr
    result = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/resnet32_digitslt_posthoc_la.py', stripped, '--work-dir',
         str(tmp_path / 'run'), '--cfg-options', *NO_TRAINING],
        cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'training samples per class' in result.stderr
    assert 'class_counts=[...]' in result.stderr
    # with the training set in the config, its labels are counted instead
    run_python('tools/test.py', 'configs/resnet32_digitslt_posthoc_la.py',
               stripped, '--work-dir', str(tmp_path / 'counted'),
               '--cfg-options', 'train_dataloader.dataset.imbalance_ratio=0.02')


def test_bad_counts_are_refused(tmp_path):
    with pytest.raises(ValueError, match='non-negative'):
        ClassCountsHook(class_counts=[3, -1, 2])
    with pytest.raises(ValueError, match='not both'):
        ClassCountsHook(class_counts=[3, 1], counts_file='c.txt')
    runner = runner_of(
        'resnet32_digitslt_la.py', tmp_path,
        custom_hooks=[dict(type='ClassCountsHook', class_counts=[5, 3, 1])])
    with pytest.raises(ValueError,
                       match='3 entries but the model has 10 classes'):
        runner.train()


@pytest.mark.slow
def test_resume_on_other_counts_is_refused(tmp_path):
    runner_of('resnet32_digitslt_la.py', tmp_path).train()
    runner = runner_of(
        'resnet32_digitslt_la.py', tmp_path, resume=True,
        **{'train_dataloader.dataset.imbalance_ratio': 0.1})
    with pytest.raises(ValueError, match='Resume with the training set'):
        runner.train()


@pytest.mark.slow
def test_heldout_evaluation_follows_the_training_set(ce_checkpoint, tmp_path):
    from mmpretrain.registry import DATASETS
    preds = tmp_path / 'preds.pkl'
    run_python('tools/test.py', 'configs/resnet32_digitslt_tau_norm.py',
               ce_checkpoint, '--heldout', '20', '--work-dir', str(tmp_path),
               '--out', str(preds), '--cfg-options', 'model.head.tau=0.5',
               'train_dataloader.dataset.imbalance_ratio=0.02')
    with open(preds, 'rb') as f:
        predictions = pickle.load(f)
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_ce.py'))
    train = cfg.train_dataloader.dataset
    train.imbalance_ratio = 0.02
    heldout = DATASETS.build(dict(train, split='heldout',
                                  heldout_per_class=20))
    # up to 20 per class: the head class has only 4 images left over
    assert len(predictions) == len(heldout) == 184
    assert sorted(int(p['gt_label']) for p in predictions) == sorted(
        heldout.get_gt_labels().tolist())
