"""research.study: the one method table and runner of the
digits-LT study (replaces tools/analysis/compare_lt.py and lt_baselines.py,
whose tests these take over), and the docs rendered from its file."""
import copy
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
from mmengine.config import Config

from helpers import run_tool
from research import study
from research.pages import fill
from research.report import DigitsStudy, class_order_block, first_epoch

REPO = study.REPO


def long_tail_datasets(node, path=''):
    if isinstance(node, dict):
        found = [(path, node)] if node.get('type') == 'LongTailDataset' \
            else []
        for key, value in node.items():
            found += long_tail_datasets(value, f'{path}.{key}')
        return found
    if isinstance(node, (list, tuple)):
        return sum((long_tail_datasets(v, f'{path}.{i}')
                    for i, v in enumerate(node)), [])
    return []


def test_method_table_is_consistent():
    for name, method in study.METHODS.items():
        assert osp.exists(osp.join(REPO, method.config)), name
        if method.parent is not None:
            assert method.parent in study.METHODS
            assert study.METHODS[method.parent].parent is None
        if method.test_only:
            assert method.parent is not None and method.knob.stage == 'test'
        if method.knob is not None:
            cfg = Config.fromfile(osp.join(REPO, method.config))
            cfg.merge_from_dict(copy.deepcopy(method.options))
            node = cfg
            for part in method.knob.key.split('.'):
                node = node[part]  # the knob exists in the config
    assert set(study.RECIPE_CANDIDATES) <= {
        n for n, m in study.METHODS.items() if m.family == 'etf'}


@pytest.mark.parametrize('name', ['ce', 'la', 'etf_dr_cb', 'cosine_ce',
                                  'posthoc_la', 'crt'])
def test_the_training_set_is_the_only_copy_and_follows_the_task(name,
                                                                 tmp_path):
    """What lt_baselines' long_tail_overrides patched in every copy of the
    training set: now there is one copy (class counts come from
    ClassCountsHook), plus the held-out split derived from it."""
    task = study.Task('eval', name, 0.02, 3)
    cfg = study.build_config(study.METHODS[name], task, str(tmp_path),
                             load_from='x.pth'
                             if study.METHODS[name].parent else None)
    found = dict(long_tail_datasets(cfg.to_dict()))
    assert set(found) == {'.train_dataloader.dataset',
                          '.test_dataloader.dataset'}
    for dataset in found.values():
        assert dataset['imbalance_ratio'] == 0.02 and dataset['seed'] == 3
    assert found['.test_dataloader.dataset']['split'] == 'heldout'
    assert 'split' not in found['.train_dataloader.dataset'] or \
        found['.train_dataloader.dataset']['split'] == 'train'
    # the validation loader is the test split, never a LongTailDataset
    assert cfg.val_dataloader.dataset.type == 'Digits'
    assert cfg.val_dataloader.dataset.split == 'test'
    assert cfg.randomness == dict(seed=3, deterministic=True)
    head = cfg.model.head
    if head.type in ('ETFHead', 'CosineClsHead'):
        assert head.seed == 3  # the ETF follows the run seed
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'NeuralCollapseHook']
    assert sorted(h['stage'] for h in hooks) == sorted(study.NC_STAGES)
    assert cfg.train_dataloader.num_workers == 0


def test_heldout_images_are_disjoint_from_training_and_test():
    from mmpretrain.registry import DATASETS
    cfg = study.build_config(study.METHODS['ce'],
                             study.Task('eval', 'ce', 0.01, 0), '/tmp/x')
    train = DATASETS.build(cfg.train_dataloader.dataset)
    held = DATASETS.build(cfg.test_dataloader.dataset)
    kept = {train._get_ori_dataset_idx(i) for i in range(len(train))}
    heldout = {held._get_ori_dataset_idx(i) for i in range(len(held))}
    assert not kept & heldout
    assert held.dataset.split == 'train'  # carved from the training split
    assert np.bincount(held.get_gt_labels()).max() == \
        study.HELDOUT_PER_CLASS
    assert 'RandomCrop' not in repr(held.dataset.pipeline)


def test_nc_groups_split_head_and_tail_halves():
    counts = [124, 74, 44, 26, 16, 9, 5, 3, 2, 1]
    t = study.nc_groups(counts)
    assert sum(c > t for c in counts) == 5 and sum(c < t for c in counts) == 5


def _row(method, seed, macro, phase='tune', ratio=0.01, knobs=None):
    return dict(id=f'{phase}/{method}/{seed}/{knobs}', phase=phase,
                method=method, ratio=ratio, seed=seed, knobs=knobs or {},
                heldout=dict(macro=macro), init=study.INIT_MARK)


def test_knobs_and_recipe_are_chosen_on_heldout_of_the_tuning_seeds():
    rows = []
    for seed in study.TUNING_SEEDS:
        for q in study.Q_GRID:
            rows.append(_row('etf_dr_q', seed, 50 + 10 * (q == 0.5),
                             knobs={'model.head.loss.balance_power': q}))
        for name in ('etf_ce', 'etf_dr', 'etf_dr_cb'):
            rows.append(_row(name, seed, 55))
    # the logit-adjusted arms: one grid and one set of seeds for all three
    assert {study.METHODS[m].knob for m in study.LA_FAMILY} == {study.LA_TAU}
    assert len(study.LA_TUNING_SEEDS) >= 5
    assert min(study.LA_TAU_GRID) < 0.5 and max(study.LA_TAU_GRID) > 2
    for seed in study.LA_TUNING_SEEDS:
        for name in study.LA_FAMILY:
            for tau in study.LA_TAU_GRID:
                rows.append(_row(name, seed, 40 + tau * (tau < 2),
                                 knobs={'model.head.loss.tau': tau}))
    chosen = study.choose_knobs(rows)
    assert chosen['etf_dr_q']['value'] == 0.5
    assert chosen['la']['value'] == chosen['cosine_la']['value'] == 1.5
    assert chosen['la']['table'][-1]['n'] == len(study.LA_TUNING_SEEDS)
    # a linear-head row from before the init change is stale: without the
    # mark, la's tuning is incomplete again
    last = study.LA_TUNING_SEEDS[-1]
    unmarked = [dict(r, init=None) if r['method'] == 'la' and r['seed'] == last
                else r for r in rows]
    assert 'la' not in study.choose_knobs(unmarked)
    assert 'etf_la' in study.choose_knobs(
        [dict(r, init=None) if r['method'] == 'etf_la' else r for r in rows])
    assert chosen['etf_dr_q']['table'][1] == dict(value=0.5, macro=60, sd=0,
                                                  n=3)
    recipe = study.select_recipe(rows)
    assert recipe['method'] == 'etf_dr_q'
    # an evaluation row, however good, changes nothing
    rows.append(_row('etf_dr_q', 0, 99, phase='eval',
                     knobs={'model.head.loss.balance_power': 1.0}))
    assert study.choose_knobs(rows)['etf_dr_q']['value'] == 0.5
    tasks, waiting = study.eval_tasks(rows, ['etf_dr_q', 'posthoc_la'])
    assert not waiting
    assert {t.knobs for t in tasks if t.method == 'etf_dr_q'} == {
        (('model.head.loss.balance_power', 0.5), )}
    assert all(t.knobs == () for t in tasks if t.method == 'posthoc_la')
    # incomplete tuning: the method waits
    _, waiting = study.eval_tasks(rows[1:], ['etf_dr_q'])
    assert waiting == ['etf_dr_q']


def test_a_test_only_arm_of_a_tuned_parent_finds_the_parents_run(tmp_path):
    """The post-hoc arms of the prototype-contrast models: their parent's
    run is named by the parent's chosen τ, which the child carries."""
    rows = [_row(name, seed, 50 + (value == 0.2),
                 knobs={'model.head.loss.tau': value})
            for name in ('cosine_pc', 'etf_pc')
            for seed in study.LA_TUNING_SEEDS
            for value in study.METHODS[name].knob.values]
    _, waiting = study.eval_tasks(
        [r for r in rows if r['method'] != 'etf_pc' or r['seed'] != 100],
        ['etf_pc_posthoc'])
    assert waiting == ['etf_pc_posthoc']  # the parent's tuning is missing
    tasks, waiting = study.eval_tasks(rows, ['etf_pc_posthoc'],
                                      {0.01: (3, )})
    assert not waiting
    [task] = tasks
    assert task.knobs == ()  # its own knob is chosen at test time
    assert task.parent_task.id == 'eval/etf_pc/r0.01/s3/model.head.loss.tau=0.2'
    with pytest.raises(FileNotFoundError, match='tau=0.2'):
        study.run_task(task, str(tmp_path))
    cfg = study.build_config(study.METHODS['etf_pc_posthoc'], task,
                             str(tmp_path), load_from='x.pth')
    assert cfg.model.head.type == 'PostHocLogitAdjustedETFHead'


def test_first_epoch_and_fill():
    curve = [dict(epoch=1, wm_cos=0.5), dict(epoch=2, wm_cos=0.85),
             dict(epoch=3, wm_cos=0.95)]
    assert first_epoch(curve, 'wm_cos', 0.8, 3) == 2
    assert first_epoch(curve, 'wm_cos', 0.99, 3) == 4  # censored
    assert fill('a {{x}} b', dict(x='1')) == 'a 1 b'
    with pytest.raises(KeyError, match='missing'):
        fill('{{x}} {{y}}', dict(x='1'))
    with pytest.raises(KeyError, match='unused'):
        fill('{{x}}', dict(x='1', z='2'))


def test_row_file_appends_and_resumes(tmp_path):
    path = str(tmp_path / 'runs.jsonl')
    assert study.load_rows(path) == []
    study.append_row(path, dict(id='a', x=1))
    study.append_row(path, dict(id='b', x=2))
    assert [r['id'] for r in study.load_rows(path)] == ['a', 'b']


# The study driver forks one process per run. Forking is safe from a
# process that never ran autograd (the study's command line), not from this
# pytest process after other tests trained models ("Unable to handle
# autograd's threading in combination with fork-based multiprocessing"), so
# the runs and their reruns happen in a fresh interpreter, as a user's do.
END_TO_END = """
import json, sys
from research import study
out, root = sys.argv[1:3]
kwargs = dict(methods=['ce', 'posthoc_la', 'tau_norm', 'etf_dr_cb'],
              seeds={0.01: (0, 1)}, workers=2, max_epochs=1, tune=False,
              log=print)
rows = study.run_study(out, root, **kwargs)
again = study.run_study(out, root, **kwargs)
by_id = {r['id']: r for r in rows}
different = {i: study.rerun(by_id[i], root)[1]
             for i in ('eval/etf_dr_cb/r0.01/s1', 'eval/posthoc_la/r0.01/s0',
                       'perm/etf_dr_cb/r0.01/s1')}
print('RESULT ' + json.dumps(dict(rows=len(rows), again=len(again),
                                  different=different)))
"""


@pytest.mark.slow
def test_study_end_to_end_resumes_reruns_exactly_and_renders(tmp_path):
    """A one-epoch study of CE, its post-hoc adjustment and ETF + DR-CB
    (CE and ETF + DR-CB also with permuted class orders): rows are
    appended, a second invocation runs nothing, a rerun of a row in a
    process of its own reproduces it field by field, and the report renders
    from the file."""
    out = str(tmp_path / 'digits_lt_runs.jsonl')
    root = str(tmp_path / 'work')
    methods = ['ce', 'posthoc_la', 'tau_norm', 'etf_dr_cb']
    log = run_tool([sys.executable, '-c', END_TO_END, out, root],
                   timeout=900)
    result = json.loads(log.split('RESULT ', 1)[1].splitlines()[0])
    rows = study.load_rows(out)
    ids = sorted(r['id'] for r in rows)
    assert ids == sorted([f'eval/{m}/r0.01/s{s}' for m in methods
                          for s in (0, 1)] +
                         [f'perm/{m}/r0.01/s{s}' for m in ('ce', 'etf_dr_cb')
                          for s in (0, 1)]), log[-3000:]
    assert result['rows'] == result['again'] == len(rows)  # nothing rerun
    by_id = {r['id']: r for r in rows}
    etf = by_id['eval/etf_dr_cb/r0.01/s1']
    assert len(etf['test']['pred']) == 500
    assert set(etf['nc']) >= {'pre_logits', 'unnormalized', 'normalized',
                              'pre_logits_curve'}
    assert etf['nc']['pre_logits']['epoch'] == 1
    assert 'mean_norm_ratio_few' in etf['nc']['unnormalized']
    posthoc = by_id['eval/posthoc_la/r0.01/s0']
    assert len(posthoc['heldout_sweep']) == len(
        study.METHODS['posthoc_la'].knob.values)
    best = max(posthoc['heldout_sweep'], key=lambda r: r['macro'])
    assert posthoc['knobs'] == {'model.head.posthoc_tau': best['value']}
    # the forked run and a fresh in-process rerun agree exactly
    assert result['different'] == {
        'eval/etf_dr_cb/r0.01/s1': [], 'eval/posthoc_la/r0.01/s0': [],
        'perm/etf_dr_cb/r0.01/s1': []}
    # a permuted run: its own order, recorded, and its counts follow it
    permuted = by_id['perm/etf_dr_cb/r0.01/s1']
    assert permuted['class_order'] == np.random.default_rng(1).permutation(
        10).tolist()
    assert 'class_order' not in etf
    # rank i >= 1 has the natural order's count of rank i (rank 0 takes
    # what its class has, up to the largest class's size)
    assert [permuted['class_counts'][c] for c in permuted['class_order']
            ][1:] == etf['class_counts'][1:]
    assert int(np.argmax(permuted['class_counts'])) == \
        permuted['class_order'][0]
    assert permuted['test']['pred'] != etf['test']['pred']
    # the seeds differ in everything random
    assert etf['test']['pred'] != by_id['eval/etf_dr_cb/r0.01/s0']['test'][
        'pred']
    report = DigitsStudy(rows)
    ci = report.compare('etf_dr_cb', 'ce', 0.01, 'top1')
    assert ci['images']['n'] == 2
    assert DigitsStudy(rows, phase='perm').compare(
        'etf_dr_cb', 'ce', 0.01, 'few')['images']['n'] == 2
    assert '| `etf_dr_cb` − `ce` |' in class_order_block(report, rows)
    assert ci['images']['mean'] == pytest.approx(
        np.mean([by_id[f'eval/etf_dr_cb/r0.01/s{s}']['test']['top1'] -
                 by_id[f'eval/ce/r0.01/s{s}']['test']['top1']
                 for s in (0, 1)]))
    with open(out) as f:
        assert all(json.loads(line)['id'] for line in f)


def test_a_failing_or_killed_run_is_reported_not_waited_for(monkeypatch,
                                                            tmp_path):
    """Each run is its own forked process: a run that raises or is killed
    ends as an error, and the row of a run that succeeds comes back."""
    import multiprocessing
    import signal
    import time

    context = multiprocessing.get_context('fork')
    task = study.Task('eval', 'ce', 0.01, 0)

    def result_of(run_task):
        monkeypatch.setattr(study, 'run_task', run_task)
        run = study._start_run(context, task, str(tmp_path), 1)
        deadline = time.time() + 60
        while (finished := study._finished_run(*run)) is None:
            assert time.time() < deadline, 'the run was never reported'
            time.sleep(0.05)
        return finished

    def raises(*args):
        raise RuntimeError('boom')

    def killed(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    assert result_of(raises) == ('error', "RuntimeError('boom')")
    assert result_of(lambda *args: {'id': 'x', 'big': list(range(10**5))}) \
        == ('row', {'id': 'x', 'big': list(range(10**5))})
    kind, text = result_of(killed)
    assert kind == 'error' and 'exit status -9' in text


def _eval_row(method, seed, pred, init=study.INIT_MARK, phase='eval',
              counts=(100, 60, 30, 20, 5)):
    gt = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    counts = list(counts)
    return dict(id=f'{phase}/{method}/r0.01/s{seed}', phase=phase,
                method=method, ratio=0.01, seed=seed, knobs={}, init=init,
                class_counts=counts,
                test=dict(gt=study.encode_labels(gt),
                          pred=study.encode_labels(pred),
                          **study.accuracy_metrics(pred, gt, counts, 50, 10)))


def test_stale_rows_are_never_mixed_with_current_ones():
    right = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    wrong_many = [1, 1, 0, 0, 2, 2, 3, 3, 4, 4]
    rows = [
        # ce: two rows from before the init change, then one current row
        _eval_row('ce', 0, wrong_many, init=None),
        _eval_row('ce', 1, wrong_many, init=None),
        _eval_row('ce', 0, right),
        # ce_cb: stale rows only; etf_dr: no mark, but its weights did not
        # change (not a linear-head arm)
        _eval_row('ce_cb', 0, wrong_many, init=None),
        _eval_row('ce_cb', 1, wrong_many, init=None),
        _eval_row('etf_dr', 0, right, init=None),
        _eval_row('etf_dr', 1, right, init=None),
    ]
    report = DigitsStudy(rows)
    assert list(report.runs('ce', 0.01)) == [0]  # not the stale seed 1
    assert report.values('ce', 0.01, 'top1').tolist() == [100.0]
    assert list(report.runs('ce_cb', 0.01)) == [0, 1]
    assert report.stale == [('ce_cb', 0.01)]
    assert not report.is_stale('etf_dr', 0.01)
    # a shot-group comparison: many-shot = classes 0 and 1
    many = report.compare('etf_dr', 'ce_cb', 0.01, 'many')
    assert many['images']['mean'] == pytest.approx(100.0)
    assert report.compare('etf_dr', 'ce_cb', 0.01, 'few')['images'][
        'mean'] == pytest.approx(0.0)
    # the runner redoes stale rows: they do not count as done
    assert [study.is_stale(r) for r in rows[:3]] == [True, True, False]


def test_fixed_geometry_verdict_follows_the_intervals():
    from research.report import fixed_geometry_block, la_controls_table
    right = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    miss_few = [0, 0, 1, 1, 2, 2, 3, 3, 0, 0]  # class 4 is the few-shot one
    tau = {'model.head.loss.tau': study.LA_TAU_GRID[0]}

    def rows_with(etf_pred, cosine_pred):
        rows = [_row(name, seed, 50, knobs={'model.head.loss.tau': value})
                for name in ('etf_la', 'cosine_la', 'la')
                for seed in study.LA_TUNING_SEEDS
                for value in study.LA_TAU_GRID]
        for seed in range(5):
            for name, pred in (('etf_la', etf_pred),
                               ('cosine_la', cosine_pred), ('la', right)):
                row = _eval_row(name, seed, pred)
                rows.append(dict(row, id=row['id'] + '/tau', knobs=tau))
        return rows

    helps = DigitsStudy(rows_with(right, miss_few))
    assert fixed_geometry_block(helps).startswith(
        '**The fixed geometry helps.**')
    same = DigitsStudy(rows_with(right, right))
    assert fixed_geometry_block(same).startswith('**Not shown')
    table = la_controls_table(helps)
    assert '`etf_la` − `cosine_la`' in table and 'higher' in table


def test_permuted_runs_draw_the_class_order_from_the_seed(tmp_path):
    """The 'perm' phase (issue 24.5): the same run with the classes from
    head to tail drawn from the seed, in the training and held-out sets;
    the natural-order run is unchanged."""
    from mmpretrain.registry import DATASETS
    method = study.METHODS['etf_la']
    natural, _, order = study._build_config(
        method, study.Task('eval', 'etf_la', 0.01, 3), str(tmp_path))
    assert order is None
    assert 'class_order_seed' not in natural.train_dataloader.dataset
    cfg, counts, order = study._build_config(
        method, study.Task('perm', 'etf_la', 0.01, 3), str(tmp_path))
    expected = np.random.default_rng(3).permutation(10).tolist()
    assert order == expected and order != list(range(10))
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.class_order_seed == 3
    # the rarest class is the last of the order, not digit 9
    assert int(np.argmin(counts)) == order[-1]
    held = DATASETS.build(cfg.test_dataloader.dataset)
    assert held.metainfo['class_order'] == order
    # perm tasks exist for the listed arms at the permuted ratio only
    tasks, _ = study.eval_tasks([], ['ce', 'ce_cb'],
                                {0.01: (0, 1), 0.1: (0, )})
    assert sorted(t.id for t in tasks if t.phase == 'perm') == [
        'perm/ce/r0.01/s0', 'perm/ce/r0.01/s1']


def test_permuted_shot_groups_are_each_seeds_own():
    """At permuted class orders every seed has its own few-shot classes:
    the paired few-shot difference averages each seed over its own."""
    right = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    miss_0 = [1, 1, 1, 1, 2, 2, 3, 3, 4, 4]
    miss_4 = [0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    # seed 0: class 4 is the rarest; seed 1: class 0 is
    natural, swapped = (100, 60, 30, 20, 5), (5, 60, 30, 20, 100)
    rows = [_eval_row('etf_dr_cb', 0, right, phase='perm', counts=natural),
            _eval_row('etf_dr_cb', 1, right, phase='perm', counts=swapped),
            # ce misses the rare class of each seed, and a common one
            _eval_row('ce', 0, miss_4, phase='perm', counts=natural),
            _eval_row('ce', 1, miss_0, phase='perm', counts=swapped)]
    report = DigitsStudy(rows, phase='perm')
    assert DigitsStudy(rows).runs('ce', 0.01) == {}  # not 'eval' runs
    few = report.compare('etf_dr_cb', 'ce', 0.01, 'few')
    assert few['images']['mean'] == pytest.approx(100.0)
    assert few['images']['lo'] == few['images']['hi'] == 100.0
    # (one group for all seeds, seed 0's, would give 50: at seed 1 ce
    # misses class 0, which is rare there, not class 4)
    many = report.compare('etf_dr_cb', 'ce', 0.01, 'many')
    assert many['images']['mean'] == pytest.approx(0.0)
    with pytest.raises(ValueError, match='other training sets'):
        DigitsStudy([rows[0], _eval_row('ce', 0, right, phase='perm',
                                        counts=swapped)],
                    phase='perm').compare('etf_dr_cb', 'ce', 0.01, 'few')
