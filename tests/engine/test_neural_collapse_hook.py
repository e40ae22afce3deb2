import json
import math
import os
import os.path as osp
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import etf_plugin  # noqa: F401  (registers the plugin's modules)
from etf_plugin.engine.hooks import NeuralCollapseHook
from etf_plugin.datasets import SubsetSampler
from etf_plugin.functional import neural_collapse_metrics
from etf_plugin.visualization import load_nc_records

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_PIPELINE = [
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='PackInputs')
]
TEST_PIPELINE = [dict(type='PackInputs')]
LINEAR_HEAD = dict(
    type='LinearClsHead',
    num_classes=10,
    in_channels=16,
    loss=dict(type='CrossEntropyLoss'))
ETF_HEAD = dict(
    type='ETFHead',
    num_classes=10,
    in_channels=16,
    with_bn=True,
    loss=dict(type='DotRegressionLoss'))


def make_cfg(work_dir, head, max_epochs=2, **hook_args):
    """A tiny ResNet on long-tailed digits (imbalance ratio 100, so every
    shot group is there), with the NC hook."""
    train_dataset = dict(
        type='LongTailDataset',
        dataset=dict(type='Digits', split='train', pipeline=TRAIN_PIPELINE),
        imbalance_ratio=0.01)
    return Config(
        dict(
            model=dict(
                type='ImageClassifier',
                data_preprocessor=dict(
                    num_classes=10, mean=[78.1], std=[96.2], to_rgb=False),
                backbone=dict(
                    type='CifarResNet',
                    depth=8,
                    base_channels=4,
                    in_channels=1),
                neck=dict(type='GlobalAveragePooling'),
                head=head),
            work_dir=work_dir,
            experiment_name=f'nc_hook_{uuid.uuid4().hex}',
            train_dataloader=dict(
                batch_size=32,
                num_workers=0,
                drop_last=True,  # no 1-sample batch for ETFHead's BN
                dataset=train_dataset,
                sampler=dict(type='DefaultSampler', shuffle=True)),
            val_dataloader=dict(
                batch_size=100,
                num_workers=0,
                dataset=dict(
                    type='Digits', split='test', pipeline=TEST_PIPELINE),
                sampler=dict(type='DefaultSampler', shuffle=False)),
            val_evaluator=dict(type='Accuracy'),
            val_cfg=dict(),
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
            custom_hooks=[
                dict(type='ClassCountsHook'),
                dict(type='NeuralCollapseHook', **hook_args)
            ],
            default_hooks=dict(logger=dict(type='LoggerHook', interval=5)),
            visualizer=dict(
                type='UniversalVisualizer',
                vis_backends=[dict(type='LocalVisBackend')]),
            default_scope='mmpretrain',
            randomness=dict(seed=0),
            log_level='WARNING'))


def nc_hook_of(runner):
    return [h for h in runner.hooks if isinstance(h, NeuralCollapseHook)][0]


def direct_metrics(runner, class_counts):
    """The metrics from features computed here, outside the hook: the whole
    long-tailed train set through the test pipeline, model in eval mode."""
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(
        dict(
            type='LongTailDataset',
            dataset=dict(type='Digits', split='train', pipeline=TEST_PIPELINE),
            imbalance_ratio=0.01))
    model = runner.model
    model.eval()
    feats, labels = [], []
    with torch.no_grad():
        for i in range(0, len(dataset), 50):
            batch = [dataset[j] for j in range(i, min(i + 50, len(dataset)))]
            data = model.data_preprocessor(
                dict(
                    inputs=[b['inputs'] for b in batch],
                    data_samples=[b['data_samples'] for b in batch]), False)
            feats.append(model.extract_feat(data['inputs'], 'pre_logits'))
            labels += [int(s.gt_label) for s in data['data_samples']]
    model.train()
    head = model.head
    if hasattr(head, 'etf_vectors'):
        weight, bias = head.etf_vectors, None
    else:
        weight, bias = head.fc.weight, head.fc.bias
    return neural_collapse_metrics(
        torch.cat(feats), torch.tensor(labels), 10, weight, class_counts,
        bias=bias)


@pytest.mark.slow
@pytest.mark.parametrize('head', [LINEAR_HEAD, ETF_HEAD],
                         ids=['linear', 'etf'])
def test_hook_logs_saves_and_plots(tmp_path, head):
    runner = Runner.from_cfg(make_cfg(str(tmp_path), head))
    runner.train()
    hook = nc_hook_of(runner)

    # One record per epoch; the end-of-training call does not repeat it.
    json_file = tmp_path / 'nc_metrics.json'
    records = [json.loads(line) for line in json_file.read_text().split('\n')
               if line]
    num_train = len(runner.train_dataloader.dataset)
    iters_per_epoch = num_train // 32
    assert [r['epoch'] for r in records] == [1, 2]
    assert [r['iter'] for r in records] == [iters_per_epoch,
                                            2 * iters_per_epoch]
    last = records[-1]
    assert last['num_samples'] == num_train
    assert last['absent_classes'] == []
    for key in ['nc1', 'nc2_equinorm', 'nc2_equiangle', 'nc2_etf_dist',
                'nc3', 'nc4', 'wm_cos', 'wm_cos_many', 'wm_cos_medium',
                'wm_cos_few', 'mc_means_cos_few', 'mc_w_cos_few']:
        assert math.isfinite(last[key]), key
    assert 0.0 <= last['nc4'] <= 1.0

    # Exactly what the pure function gives on the same features: no sample
    # lost or repeated, test pipeline, eval mode, the head's classifier.
    counts = np.bincount(
        etf_plugin.datasets.read_gt_labels(
            runner.train_dataloader.dataset),
        minlength=10)
    expected = direct_metrics(runner, counts)
    for key, value in expected.items():
        if isinstance(value, float):
            assert last[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    if head['type'] == 'ETFHead':
        # The classifier is the fixed ETF itself.
        assert last['nc2_etf_dist_w'] < 1e-6
        assert last['nc2_equinorm_w'] < 1e-6
    else:
        assert last['nc2_etf_dist_w'] > 1e-3

    # Scalars in the message hub and in the visualizer's backend.
    assert runner.message_hub.get_scalar('nc/nc1').current() == \
        pytest.approx(last['nc1'])
    scalars_file = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(scalars_file) as f:
        logged = [json.loads(line) for line in f if 'nc/nc1' in line]
    assert [r['step'] for r in logged] == [1, 2]
    assert logged[-1]['nc/nc4'] == pytest.approx(last['nc4'])

    # The PNG is a real PNG.
    with open(tmp_path / 'nc_curves.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # The measured loader uses the test pipeline and pads nothing.
    dataset = hook._dataloader.dataset
    assert [type(t).__name__ for t in dataset.dataset.pipeline.transforms] \
        == ['PackInputs']
    assert len(hook._dataloader.sampler) == num_train


@pytest.mark.slow
def test_measure_restores_mode_keeps_bn_and_appends(tmp_path):
    runner = Runner.from_cfg(
        make_cfg(str(tmp_path), ETF_HEAD, max_epochs=1, max_samples=100))
    runner.train()
    model = runner.model
    running_mean = model.head.classifier.bn.running_mean.clone()

    # A resumed run gets a new hook instance: it appends, never overwrites.
    hook = NeuralCollapseHook(max_samples=100)
    model.train()
    metrics = hook.measure(runner, epoch=1)
    assert model.training
    assert torch.equal(model.head.classifier.bn.running_mean, running_mean)
    assert metrics['num_samples'] == 100
    model.eval()
    hook._last_iter = None
    hook.measure(runner, epoch=1)
    assert not model.training

    lines = (tmp_path / 'nc_metrics.json').read_text().strip().split('\n')
    assert len(lines) == 3
    # The same iteration measured again: the latest record wins.
    records = load_nc_records(str(tmp_path / 'nc_metrics.json'))
    assert len(records) == 1
    assert records[0] == json.loads(lines[-1])


def test_subset_sampler_shards_without_padding():
    full = [SubsetSampler(10, None, rank=r, world_size=3) for r in range(3)]
    assert sorted(sum((s.indices for s in full), [])) == list(range(10))
    assert [len(s) for s in full] == [4, 3, 3]

    shards = [SubsetSampler(1000, 101, seed=5, rank=r, world_size=4)
              for r in range(4)]
    chosen = sum((s.indices for s in shards), [])
    assert len(chosen) == len(set(chosen)) == 101
    assert chosen != list(range(101))  # a random subset, not the head
    again = SubsetSampler(1000, 101, seed=5, rank=0, world_size=1).indices
    assert sorted(chosen) == again


@pytest.mark.slow
def test_plot_nc_tool_overlays_runs(tmp_path):
    for name, scale in [('etf_dr', 1.0), ('ce', 3.0)]:
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / 'nc_metrics.json', 'w') as f:
            for epoch in (1, 2, 3):
                f.write(json.dumps(
                    dict(epoch=epoch, iter=10 * epoch, nc1=scale / epoch,
                         nc4=0.1 * scale / epoch)) + '\n')
    out = tmp_path / 'compare.png'
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis',
                                  'plot_nc.py'),
         str(tmp_path / 'etf_dr'), str(tmp_path / 'ce'), '--out', str(out)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'nc1, nc4 for etf_dr, ce' in result.stdout
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'

    missing = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis',
                                  'plot_nc.py'), str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0
    assert 'NeuralCollapseHook' in missing.stderr


@pytest.mark.slow
def test_stages_put_heads_on_the_same_representation(tmp_path):
    results = {}
    for head in (LINEAR_HEAD, ETF_HEAD):
        for stage in ('pre_logits', 'unnormalized', 'normalized'):
            work_dir = tmp_path / f'{head["type"]}_{stage}'
            runner = Runner.from_cfg(
                make_cfg(str(work_dir), head, max_epochs=1, stage=stage,
                         nc4=False, plot_file=None))
            runner.train()
            results[head['type'], stage] = load_nc_records(
                str(work_dir / 'nc_metrics.json'))[-1]
    for (head, stage), record in results.items():
        assert record['stage'] == stage
        # classifier metrics only where the classifier sees the features
        assert ('nc3' in record) == (stage == 'pre_logits'), (head, stage)
    # LinearClsHead classifies the pooled feature itself
    assert results['LinearClsHead', 'pre_logits']['nc1'] == pytest.approx(
        results['LinearClsHead', 'unnormalized']['nc1'])
    # ETFHead classifies the normalised feature
    assert results['ETFHead', 'pre_logits']['nc1'] == pytest.approx(
        results['ETFHead', 'normalized']['nc1'], rel=1e-5)
    assert results['ETFHead', 'unnormalized']['nc1'] != pytest.approx(
        results['ETFHead', 'normalized']['nc1'], rel=1e-3)


def test_records_file_survives_a_torn_line_and_runs_do_not_mix(tmp_path):
    from mmengine.logging import MMLogger
    from etf_plugin.visualization import save_nc_records
    json_file = tmp_path / 'nc_metrics.json'
    save_nc_records(str(json_file), [dict(epoch=1, iter=10, nc1=0.5),
                                     dict(epoch=2, iter=20, nc1=0.4)])
    with open(json_file, 'a') as f:  # a crash in the middle of a write
        f.write('{"epoch": 3, "iter": 30, "nc')
    with pytest.warns(UserWarning, match='torn'):
        records = load_nc_records(str(json_file))
    assert [r['iter'] for r in records] == [10, 20]

    class FakeRunner:
        work_dir = str(tmp_path)
        logger = MMLogger.get_instance(f'nc_{uuid.uuid4().hex}')

    hook = NeuralCollapseHook()
    resumed = FakeRunner()
    resumed.iter = 10  # resumed from the checkpoint of iteration 10
    with pytest.warns(UserWarning, match='torn'):
        hook.before_train(resumed)
    assert [r['iter'] for r in load_nc_records(str(json_file))] == [10]
    assert 'nc' in json_file.read_text() and '"iter": 30' not in \
        json_file.read_text()  # repaired: the torn line is gone
    fresh = FakeRunner()
    fresh.iter = 0  # a new run in the same work dir
    hook.before_train(fresh)
    assert not json_file.exists()
    assert (tmp_path / 'nc_metrics.json.old').exists()


@pytest.mark.slow
def test_figure_reaches_the_visualizer_and_logs_hold_no_bar(tmp_path, capfd):
    from mmengine.visualization import Visualizer
    runner = Runner.from_cfg(
        make_cfg(str(tmp_path), ETF_HEAD, max_epochs=1, nc4=False))
    images = []
    original = Visualizer.add_image

    def record(self, name, image, step=0):
        images.append((name, image.shape, image.dtype))
        return original(self, name, image, step)

    Visualizer.add_image = record
    try:
        runner.train()
    finally:
        Visualizer.add_image = original
    assert images and images[0][0] == 'nc_curves'
    assert images[0][1][2] == 3 and images[0][2] == np.uint8
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    out, err = capfd.readouterr()
    for text in (log, out, err):  # stdout is not a terminal here
        assert '[>' not in text and '\r' not in text


def test_a_figure_that_fails_to_draw_only_warns(tmp_path, monkeypatch):
    """The records are the result; a broken figure must not end training."""
    import etf_plugin.engine.hooks.neural_collapse_hook as nc_hook_module

    def broken_figure(*args, **kwargs):
        raise RuntimeError('no fonts here')

    monkeypatch.setattr(nc_hook_module, 'nc_curves_figure', broken_figure)
    runner = Runner.from_cfg(
        make_cfg(str(tmp_path), ETF_HEAD, max_epochs=1, nc4=False))
    runner.train()
    assert load_nc_records(str(tmp_path / 'nc_metrics.json'))
    assert not (tmp_path / 'nc_curves.png').exists()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'the NC figure was not drawn' in log and 'no fonts here' in log


def test_one_pass_equals_two_passes(tmp_path):
    """NC4 on the features kept from the statistics pass is the two-pass
    result; over the budget the hook takes the second pass itself."""
    runner = Runner.from_cfg(
        make_cfg(str(tmp_path), LINEAR_HEAD, max_epochs=1, plot_file=None))
    results = {}
    for name, budget in [('kept', 1024), ('two_passes', 0),
                         ('over_budget', 0.01)]:  # 10 KiB: a few batches
        hook = NeuralCollapseHook(nc4_cache_mb=budget, plot_file=None,
                                  class_counts=[30] * 5 + [5] * 5)
        results[name] = hook.measure(runner, epoch=0)
        results[name + '_passes'] = hook.last_passes
    assert results['kept_passes'] == 1
    assert results['two_passes_passes'] == results['over_budget_passes'] == 2
    one, two = results['kept'], results['two_passes']
    assert one.keys() == two.keys() == results['over_budget'].keys()
    assert {'nc4', 'cdnv', 'cdnv_few', 'nc1_svd'} <= one.keys()
    assert 0 < one['nc4'] < 1  # an untrained model: a real count
    for key, value in two.items():
        if isinstance(value, float):
            assert abs(one[key] - value) <= 1e-6, key
            assert abs(results['over_budget'][key] - value) <= 1e-6, key


def test_figure_is_drawn_every_plot_interval_and_at_the_end(tmp_path,
                                                            monkeypatch):
    """Drawing costs about a second whatever the data size: the first
    measurement, every plot_interval-th after it and the last are drawn;
    every measurement is still recorded."""
    drawn = []
    draw = NeuralCollapseHook._draw

    def spy(self, runner, step, records=None):
        drawn.append((step, records is None))
        draw(self, runner, step, records)

    monkeypatch.setattr(NeuralCollapseHook, '_draw', spy)
    runner = Runner.from_cfg(
        make_cfg(str(tmp_path), ETF_HEAD, max_epochs=4, max_samples=60,
                 nc4=False, plot_interval=2))
    runner.train()
    records = [json.loads(line) for line in
               (tmp_path / 'nc_metrics.json').read_text().split('\n')
               if line]
    assert [r['epoch'] for r in records] == [1, 2, 3, 4]
    # epoch 4, not drawn at its measurement, is drawn after training from
    # the saved records
    assert drawn == [(1, False), (3, False), (4, True)]
    with open(tmp_path / 'nc_curves.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(ValueError, match='plot_interval'):
        NeuralCollapseHook(plot_interval=0)
