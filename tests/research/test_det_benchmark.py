"""The long-tailed detection benchmark: groups, table, docs block, configs
of the rows, and the resumable command line."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config

from helpers import REPO_ROOT
from research import det_benchmark as benchmark

SCRIPT = osp.join(REPO_ROOT, 'benchmarks', 'det_long_tail.py')


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Builds here resolve in mmdet's scope, as under tests/det (conftest's
    default_scope picks mmpretrain's outside that folder)."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def test_frequency_groups():
    assert benchmark.frequency_groups([100, 49, 24, 12, 6, 3]) == dict(
        rare=[4, 5], common=[2, 3], frequent=[0, 1])
    # the boundaries: rare <= 10, frequent >= 41
    assert benchmark.frequency_groups([10, 11, 40, 41]) == dict(
        rare=[0], common=[1, 2], frequent=[3])
    # LVIS's own thresholds (by images): rare 1-10, frequent > 100
    assert benchmark.frequency_groups(
        [1, 10, 11, 100, 101], rare_max=10, frequent_min=101) == dict(
            rare=[0, 1], common=[2, 3], frequent=[4])


def fake_run(row, seed, class_ap, mAP=0.5):
    return dict(row=row, seed=seed, split='test', options={}, mAP=mAP,
                mAP_50=mAP + 0.2, class_ap=class_ap,
                train_counts=[100, 49, 24, 12, 6, 3], seconds=10.0)


def test_group_ap_and_table():
    run = fake_run('linear-ce', 0, [0.9, 0.7, 0.6, 0.4, 0.2, 0.0])
    assert benchmark.group_ap(run) == pytest.approx(
        dict(rare=0.1, common=0.5, frequent=0.8))
    runs = [
        run,
        fake_run('linear-ce', 1, [0.9, 0.7, 0.6, 0.4, 0.4, 0.2], mAP=0.7),
        fake_run('etf-objectness', 0, [0.8] * 6, mAP=0.6),
    ]
    table = benchmark.summarize(runs, ['linear-ce', 'etf-objectness'])
    ce, etf = table
    assert ce['seeds'] == [0, 1]
    assert ce['mAP'] == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1)))
    assert ce['AP_r'] == pytest.approx((0.2, np.std([0.1, 0.3], ddof=1)))
    assert np.isnan(etf['mAP'][1])  # one seed: no spread
    text = benchmark.format_table(table)
    assert '| Linear + CE (mmdet default) | 2 | 0.600 ± 0.141 |' in text
    assert text.count('\n') == 3


def test_update_docs(tmp_path):
    doc = tmp_path / 'doc.md'
    doc.write_text(f'before\n{benchmark.DOCS_BEGIN}\nold\n'
                   f'{benchmark.DOCS_END}\nafter\n')
    benchmark.update_docs(str(doc), 'new table')
    assert doc.read_text() == (f'before\n{benchmark.DOCS_BEGIN}\nnew table\n'
                               f'{benchmark.DOCS_END}\nafter\n')
    doc.write_text('no block')
    with pytest.raises(ValueError, match='no generated block'):
        benchmark.update_docs(str(doc), 'x')


def test_rows_share_detector_schedule_data():
    cfgs = {
        row: benchmark.build_config(row, 1, 'work', repo_root=REPO_ROOT)
        for row in benchmark.ROWS
    }
    reference = cfgs['linear-ce']
    for row, cfg in cfgs.items():
        assert cfg.randomness.seed == 1
        # no validation loop: mmengine runs it after the last epoch whatever
        # val_interval says, on the reported split, also when tuning
        assert cfg.val_cfg is None and cfg.val_dataloader is None
        for key in ('train_cfg', 'param_scheduler', 'optim_wrapper',
                    'train_dataloader', 'test_dataloader'):
            assert cfg[key] == reference[key], (row, key)
        # only the bbox head's type or its loss differ
        model, base = cfg.model.to_dict(), reference.model.to_dict()
        for bbox_head in (model['roi_head'].pop('bbox_head'),
                          base['roi_head'].pop('bbox_head')):
            bbox_head.pop('type')
            bbox_head.pop('loss_cls')
        assert model == base, row
    assert cfgs['etf-objectness'].model.roi_head.bbox_head.type == \
        'ETFBBoxHead'
    with pytest.raises(ValueError, match='Unknown row'):
        benchmark.build_config('nope', 0, 'work', repo_root=REPO_ROOT)


def test_splits_are_the_ones_documented():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, benchmark.CONFIG_DIR,
                 benchmark.ROWS['linear-ce'][1]))
    train = DATASETS.build(dict(cfg.train_dataloader.dataset,
                                img_dir=None, lazy_init=False))
    counts = benchmark.instance_counts(train, 6)
    assert counts.tolist() == [100, 49, 24, 12, 6, 3]
    assert benchmark.frequency_groups(counts) == dict(
        rare=[4, 5], common=[2, 3], frequent=[0, 1])
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert benchmark.instance_counts(test, 6).tolist() == [50] * 6
    # tuning happens on another draw than the reported split
    heldout = benchmark.build_config('etf-objectness', 0, 'work', 'heldout',
                                     repo_root=REPO_ROOT)
    held = heldout.test_dataloader.dataset
    assert held.seed not in (cfg.test_dataloader.dataset.seed,
                             cfg.train_dataloader.dataset.seed)
    assert benchmark.run_key('linear-ce', 2, 'heldout', {'a': 1}) == \
        'heldout/linear-ce/seed2 a=1'


@pytest.mark.slow
def test_command_line_runs_and_resumes(tmp_path):
    results = tmp_path / 'results.json'
    command = [
        sys.executable, SCRIPT, '--rows', 'etf-objectness', '--seeds', '0',
        '--split', 'heldout', '--results', str(results), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.dataset.n_max=8', 'heldout_dataset.n_max=2',
        '--test-options', 'logit_scale=5'
    ]
    env = dict(__import__('os').environ, OMP_NUM_THREADS='1')
    first = subprocess.run(command, capture_output=True, text=True, env=env,
                           timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert '| ETF (K vertices) + objectness' in first.stdout
    run, = json.loads(results.read_text())['runs'].values()
    assert run['row'] == 'etf-objectness' and run['split'] == 'heldout'
    assert run['options']['train_cfg.max_epochs'] == 1
    assert len(run['class_ap']) == 6
    variant, = run['test_variants']
    assert variant['attributes'] == {'logit_scale': 5}
    # a second call finds the run and only prints the table
    second = subprocess.run(command, capture_output=True, text=True, env=env,
                            timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert '[skip]' in second.stdout and '[run ]' not in second.stdout
