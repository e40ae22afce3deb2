"""The long-tailed digits study: one method table and one runner.

Every method is a config of ``configs/`` plus a few overrides
(:data:`METHODS`); every run is a normal MMEngine training (or a test of a
parent run's checkpoint) with the same study-wide settings
(:func:`build_config`): the run seed drives the initialisation, the batch
order and augmentation (``EpochSeedHook``), the long-tailed subsample and
the ETF's rotation (``model.head.seed``), ``randomness.deterministic=True``,
one thread, no dataloader workers. A rerun of one seed therefore reproduces
its row of the per-run file exactly (``seconds`` and ``host`` aside).

Knobs are never chosen on the test split:

- *training* knobs (``q`` of the dataset-level DR weights, ``τ`` of the
  logit-adjusted losses) are chosen on held-out images of the training split
  (``LongTailDataset(split='heldout')``) of dedicated tuning seeds
  (:data:`TUNING_SEEDS`, disjoint from the evaluation seeds) at
  :data:`TUNING_RATIO`, by mean balanced accuracy, and reused at every ratio;
- *test-time* knobs (``τ`` of post-hoc logit adjustment and of
  τ-normalisation) are chosen per run on that run's own held-out images;
- which ETF method is *the* ETF recipe is chosen the same way as a training
  knob, among :data:`RECIPE_CANDIDATES` (:func:`select_recipe`).

Evaluation runs (phase ``'eval'``) keep the natural class order (digit 0
the largest class, digit 9 the smallest); the arms of :data:`PERM_METHODS`
are also run with a class order drawn from the run seed (phase ``'perm'``,
the order in the row's ``class_order``), with the knobs chosen at the
natural order.

Each run's results are one JSON line (:func:`run_task`): test and held-out
predictions per image (so every accuracy and every confidence interval is
recomputed from them, see :mod:`research.stats`), the test
accuracy every :data:`VAL_INTERVAL` epochs, and the neural-collapse records
of ``NeuralCollapseHook`` at three stages. :func:`run_study` runs what is
missing from the file, two processes at a time, and appends each finished
run, so an interrupted study resumes where it stopped.
"""
import copy
import dataclasses
import inspect
import json
import multiprocessing
import os
import os.path as osp
import platform
import shutil
import signal
import sys
import time
import traceback
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric

from .stats import accuracy_metrics, decode_labels, encode_labels

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Study design.
EVAL_SEEDS = {0.01: tuple(range(10)), 0.02: tuple(range(5)),
              0.1: tuple(range(5))}
TUNING_SEEDS = (100, 101, 102)
# The logit-adjusted arms (la, cosine_la, etf_la) are tuned alike (issue
# 24): one grid that brackets each choice and five seeds (at ratio 0.01 the
# held-out split has 4 images of the rarest class, so one tuning seed can
# swing the choice).
LA_TUNING_SEEDS = (100, 101, 102, 103, 104)
TUNING_RATIO = 0.01
HELDOUT_PER_CLASS = 20
# Which digits form the tail (issue 24.5): the phase 'perm' runs these arms
# at ratio PERM_RATIO with a class order drawn from the run seed
# (LongTailDataset(class_order_seed=seed)), at the evaluation seeds and the
# knobs chosen at the natural order, so that no conclusion rests on one
# assignment of digits to shot groups.
PERM_METHODS = ('ce', 'la', 'cosine_la', 'etf_la', 'etf_dr_cb')
PERM_RATIO = 0.01
VAL_INTERVAL = 10
# LongTailAccuracy's groups in the digits configs: many > 50, few < 10.
MANY_THR, FEW_THR = 50, 10
# NC groups: the head half and the tail half of the classes (see nc_groups).
NC_FIELDS = ('nc1', 'wm_cos', 'nc2_etf_dist', 'nc2_equinorm', 'nc3',
             'mc_means_cos_few', 'mc_means_cos_many', 'mc_w_cos_few',
             'mc_w_cos_many', 'wm_cos_few', 'mean_norm_ratio_few',
             'mean_norm_ratio_many')
NC_STAGES = ('pre_logits', 'unnormalized', 'normalized')

CE = 'configs/resnet32_digitslt_ce.py'
ETF = 'configs/resnet32_digitslt_etf.py'
# Rows of the linear-head arms written before CifarResNet initialised itself
# when built (issue 24.3) lack this mark: their backbones started from other
# weights than the ETF and cosine arms' at the same seed, and they no longer
# describe the code. The ETF and cosine arms' weights did not change.
INIT_MARK = 'backbone-at-build'


@dataclasses.dataclass(frozen=True)
class Knob:
    """A setting chosen on held-out data.

    Attributes:
        key (str): The config key, e.g. ``'model.head.loss.balance_power'``.
        symbol (str): Its name in the docs, e.g. ``'q'``.
        values (tuple): The grid.
        stage (str): ``'train'`` (chosen on the tuning seeds, one training
            run per value) or ``'test'`` (chosen per run at test time).
        seeds (tuple): The tuning seeds of a ``'train'`` knob.
    """
    key: str
    symbol: str
    values: tuple
    stage: str
    seeds: tuple = TUNING_SEEDS


@dataclasses.dataclass(frozen=True)
class Method:
    """One arm of the study.

    Attributes:
        name (str): Short name (file keys, CLI).
        label (str): The method in words (tables and figures).
        config (str): Config file, relative to the repository.
        options (dict): ``Config.merge_from_dict`` overrides.
        family (str): ``'linear'``, ``'cosine'`` or ``'etf'`` classifier.
        parent (str, optional): Method whose final checkpoint this one
            starts from (tested, or trained further).
        test_only (bool): Only tests the parent's checkpoint.
        knob (Knob, optional): The setting chosen on held-out data.
        nc_every_epoch (bool): Measure neural collapse at ``pre_logits``
            after every epoch (the convergence read-out).
    """
    name: str
    label: str
    config: str
    options: dict = dataclasses.field(default_factory=dict)
    family: str = 'linear'
    parent: Optional[str] = None
    test_only: bool = False
    knob: Optional[Knob] = None
    nc_every_epoch: bool = False


LA_TAU_GRID = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
LA_TAU = Knob('model.head.loss.tau', 'τ', LA_TAU_GRID, 'train',
              LA_TUNING_SEEDS)
TEST_TAU_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
# The prototype-contrast loss's temperature (issue 24.6), tuned like the LA
# arms; the grid brackets the small temperatures of contrastive losses.
PC_TAU = Knob('model.head.loss.tau', 'τ', (0.05, 0.1, 0.2, 0.5, 1.0),
              'train', LA_TUNING_SEEDS)
# q = 0 is the plain DR loss, the arm etf_dr, which competes as such.
Q_GRID = (0.25, 0.5, 0.75, 1.0)

_METHODS = [
    Method('ce', 'learnable linear + CE', CE),
    Method('la', 'learnable linear + logit-adjusted CE',
           'configs/resnet32_digitslt_la.py', knob=LA_TAU),
    # Sensitivity check of the LA baseline: Menon et al.'s default, untuned.
    Method('la_default', 'learnable linear + logit-adjusted CE, τ = 1 '
           '(paper default, not tuned)', 'configs/resnet32_digitslt_la.py',
           {'model.head.loss.tau': 1.0}),
    Method('ce_cb', 'learnable linear + CE, per-batch class-balanced '
           'weights', CE,
           {'model.head.loss': dict(_delete_=True,
                                    type='ClassBalancedCrossEntropyLoss')}),
    Method('cosine_ce', 'learnable cosine (BN + L2 neck, scale 10, '
           'ETF start) + CE', CE,
           {'model.head': dict(_delete_=True, type='CosineClsHead',
                               num_classes=10, in_channels=64,
                               loss=dict(type='CrossEntropyLoss'))},
           family='cosine'),
    Method('etf_ce', 'fixed ETF + CE', ETF,
           {'model.head.loss': dict(_delete_=True, type='CrossEntropyLoss')},
           family='etf', nc_every_epoch=True),
    # The control of etf_la: the same neck, scale, starting rows and loss,
    # the rows trained.
    Method('cosine_la', 'learnable cosine (BN + L2 neck, scale 10, ETF '
           'start) + logit-adjusted CE',
           'configs/resnet32_digitslt_cosine_la.py', family='cosine',
           knob=LA_TAU),
    Method('etf_la', 'fixed ETF + logit-adjusted CE',
           'configs/resnet32_digitslt_etf_la.py', family='etf',
           knob=LA_TAU),
    # Koromilas et al. (ICML 2026): prototypes as anchors, other-class batch
    # samples as negatives; learnable and fixed prototypes.
    Method('cosine_pc', 'learnable cosine (BN + L2 neck, ETF start) + '
           'prototype-contrast loss', CE,
           {'model.head': dict(_delete_=True, type='CosineClsHead',
                               num_classes=10, in_channels=64,
                               loss=dict(type='PrototypeContrastLoss',
                                         tau=0.1))},
           family='cosine', knob=PC_TAU),
    Method('etf_pc', 'fixed ETF + prototype-contrast loss', ETF,
           {'model.head.loss': dict(_delete_=True,
                                    type='PrototypeContrastLoss', tau=0.1)},
           family='etf', knob=PC_TAU),
    # Logit adjustment cancels in this loss (a per-class offset of the
    # cosines changes no term), so it can only act at prediction.
    Method('cosine_pc_posthoc', 'the cosine_pc model, post-hoc logit '
           'adjustment', CE,
           {'model.head': dict(_delete_=True,
                               type='PostHocLogitAdjustedCosineClsHead',
                               num_classes=10, in_channels=64,
                               posthoc_tau=1.0,
                               loss=dict(type='PrototypeContrastLoss'))},
           family='cosine', parent='cosine_pc', test_only=True,
           knob=Knob('model.head.posthoc_tau', 'τ', TEST_TAU_GRID, 'test')),
    Method('etf_pc_posthoc', 'the etf_pc model, post-hoc logit adjustment',
           ETF,
           {'model.head.type': 'PostHocLogitAdjustedETFHead',
            'model.head.posthoc_tau': 1.0,
            'model.head.loss': dict(_delete_=True,
                                    type='PrototypeContrastLoss')},
           family='etf', parent='etf_pc', test_only=True,
           knob=Knob('model.head.posthoc_tau', 'τ', TEST_TAU_GRID, 'test')),
    Method('etf_dr', 'fixed ETF + DR (the paper\'s formula)', ETF,
           {'model.head.loss.class_balanced': False}, family='etf',
           nc_every_epoch=True),
    Method('etf_dr_cb', 'fixed ETF + DR, per-batch class-balanced '
           '(released code)', ETF,
           family='etf', nc_every_epoch=True),
    Method('etf_dr_q', 'fixed ETF + DR, dataset-level weights n_k^-q '
           '(q > 0)',
           'configs/resnet32_digitslt_etf_dr_tempered.py', family='etf',
           knob=Knob('model.head.loss.balance_power', 'q', Q_GRID,
                     'train')),
    Method('posthoc_la', 'the CE model, post-hoc logit adjustment',
           'configs/resnet32_digitslt_posthoc_la.py', parent='ce',
           test_only=True,
           knob=Knob('model.head.posthoc_tau', 'τ', TEST_TAU_GRID, 'test')),
    Method('tau_norm', 'the CE model, τ-normalised classifier',
           'configs/resnet32_digitslt_tau_norm.py', parent='ce',
           test_only=True,
           knob=Knob('model.head.tau', 'τ', TEST_TAU_GRID, 'test')),
    Method('crt', 'the CE model, classifier re-trained class-balanced '
           '(10 epochs)', 'configs/resnet32_digitslt_crt.py', parent='ce'),
]
METHODS: Dict[str, Method] = {m.name: m for m in _METHODS}
# The ETF methods among which the held-out data choose the ETF recipe.
RECIPE_CANDIDATES = ('etf_ce', 'etf_la', 'etf_dr', 'etf_dr_cb', 'etf_dr_q')
# The methods whose runs at the tuning seeds the recipe choice needs.
TUNED_AT_TUNING_SEEDS = RECIPE_CANDIDATES + ('la', 'cosine_la', 'cosine_pc',
                                             'etf_pc')
# The logit-adjusted arms, compared with each other (issue 24).
LA_FAMILY = ('la', 'cosine_la', 'etf_la')


def is_stale(row: dict) -> bool:
    """Whether a row no longer describes the code (see :data:`INIT_MARK`).
    """
    return (METHODS[row['method']].family == 'linear'
            and row.get('init') != INIT_MARK)


@dataclasses.dataclass(frozen=True)
class Task:
    """One run: a method at a ratio and seed, with fixed knob values."""
    # 'tune', 'eval', or 'perm' (an evaluation run whose class order, the
    # classes from head to tail, is drawn from the seed)
    phase: str
    method: str
    ratio: float
    seed: int
    knobs: Tuple[Tuple[str, float], ...] = ()
    # the parent's training knobs (its chosen values), which name its run
    parent_knobs: Tuple[Tuple[str, float], ...] = ()

    @property
    def parent_task(self) -> Optional['Task']:
        """The run whose checkpoint this one starts from."""
        parent = METHODS[self.method].parent
        if parent is None:
            return None
        return Task(self.phase, parent, self.ratio, self.seed,
                    self.parent_knobs)

    @property
    def id(self) -> str:
        knobs = ''.join(f'/{k}={v:g}' for k, v in self.knobs)
        return (f'{self.phase}/{self.method}/r{self.ratio:g}/s{self.seed}'
                f'{knobs}')

    def work_dir(self, root: str) -> str:
        return osp.join(root, self.id.replace('/', '_'))


# --------------------------------------------------------------------------
# Building one run


def nc_groups(class_counts: Sequence[int]) -> float:
    """The threshold that splits the classes into a head half (more training
    images) and a tail half (fewer), for ``NeuralCollapseHook(many_thr=t,
    few_thr=t)``: midway between the two middle counts, so the groups are
    the same classes at every imbalance ratio's ranking."""
    ordered = sorted(class_counts, reverse=True)
    half = len(ordered) // 2
    return (ordered[half - 1] + ordered[half]) / 2


def training_counts(cfg) -> Tuple[List[int], Optional[List[int]]]:
    """The class counts of ``cfg``'s training set (labels only), and its
    class order (the classes from the largest to the smallest profile rank;
    None for the natural order)."""
    from mmpretrain.registry import DATASETS

    from etf_plugin.datasets import training_class_counts
    dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    order = dataset.metainfo.get('class_order')
    return (training_class_counts(dataset).tolist(),
            None if order is None else [int(c) for c in order])


def _head_takes_seed(head_type: str) -> bool:
    from mmpretrain.registry import MODELS
    cls = MODELS.get(head_type)
    return cls is not None and 'seed' in inspect.signature(cls).parameters


def build_config(method: Method,
                 task: Task,
                 work_dir: str,
                 load_from: Optional[str] = None,
                 max_epochs: Optional[int] = None):
    """The config of one run: the method's config and options, the task's
    ratio, seed and knobs, and the study-wide settings.

    Args:
        method (Method): The arm.
        task (Task): Ratio, seed and knob values.
        work_dir (str): The run's work dir.
        load_from (str, optional): The parent's checkpoint.
        max_epochs (int, optional): Shorter schedule (pilots and tests);
            the cRT stage keeps at most its own 10 epochs.

    Returns:
        Config: Ready for ``Runner.from_cfg``; its ``test_dataloader`` is
        the held-out split of the run's training set.
    """
    return _build_config(method, task, work_dir, load_from, max_epochs)[0]


def _build_config(method: Method,
                  task: Task,
                  work_dir: str,
                  load_from: Optional[str] = None,
                  max_epochs: Optional[int] = None):
    """:func:`build_config`, and the class counts and class order of the
    run's training set (the dataset built once)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from etf_plugin.datasets import heldout_dataset_cfg, innermost_dataset_cfg

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(osp.join(REPO, method.config))
    cfg.merge_from_dict(copy.deepcopy(method.options))
    cfg.merge_from_dict(dict(task.knobs))
    if max_epochs is not None:
        cfg.train_cfg.max_epochs = min(cfg.train_cfg.max_epochs, max_epochs)
    epochs = cfg.train_cfg.max_epochs
    seed = task.seed
    options = {
        'work_dir': work_dir,
        'experiment_name': task.id.replace('/', '_'),
        'randomness': dict(seed=seed, deterministic=True),
        'train_dataloader.dataset.imbalance_ratio': task.ratio,
        'train_dataloader.dataset.seed': seed,
        'train_cfg.val_interval': VAL_INTERVAL,
        'default_hooks.logger.interval': 1000,
        # the runtime's checkpoint hook, saving the final epoch only
        'default_hooks.checkpoint.interval': epochs,
        'default_hooks.checkpoint.max_keep_ckpts': 1,
        'visualizer.vis_backends': [dict(type='LocalVisBackend')],
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    if load_from is not None:
        options['load_from'] = load_from
    if task.phase == 'perm':
        options['train_dataloader.dataset.class_order_seed'] = seed
    cfg.merge_from_dict(options)
    if _head_takes_seed(cfg.model.head.type):
        cfg.model.head.seed = seed  # the ETF's rotation follows the run
    counts, order = training_counts(cfg)
    threshold = nc_groups(counts)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='NeuralCollapseHook',
             interval=1 if stage == 'pre_logits' and method.nc_every_epoch
             else epochs,
             stage=stage, nc4=False, many_thr=threshold, few_thr=threshold,
             out_file=f'nc_{stage}.json', plot_file=None)
        for stage in NC_STAGES
    ]
    test_pipeline = innermost_dataset_cfg(cfg.val_dataloader.dataset).get(
        'pipeline')
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.test_dataloader.dataset = heldout_dataset_cfg(
        cfg.train_dataloader.dataset, HELDOUT_PER_CLASS, test_pipeline)
    return cfg, counts, order


class _Predictions(BaseMetric):
    """An evaluator metric that keeps every evaluation's (labels,
    predictions) in memory instead of computing a number."""
    default_prefix = 'predictions'

    def __init__(self):
        super().__init__()
        self.evaluations = []

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            self.results.append((int(sample['gt_label'].reshape(-1)[0]),
                                 int(sample['pred_label'].reshape(-1)[0])))

    def compute_metrics(self, results) -> dict:
        gt, pred = zip(*results)
        self.evaluations.append((np.array(gt), np.array(pred)))
        return {}


def _split_record(gt, pred, counts) -> dict:
    return dict(gt=encode_labels(gt), pred=encode_labels(pred),
                **accuracy_metrics(pred, gt, counts, MANY_THR, FEW_THR))


def _nc_records(work_dir: str, every_epoch: bool) -> dict:
    from etf_plugin.visualization import load_nc_records
    result = {}
    for stage in NC_STAGES:
        records = load_nc_records(osp.join(work_dir, f'nc_{stage}.json'))
        final = records[-1]
        result[stage] = {k: v for k, v in final.items()
                         if isinstance(v, (int, float)) and k != 'seconds'}
        if stage == 'pre_logits' and every_epoch:
            result['pre_logits_curve'] = [
                {k: r[k] for k in ('epoch', *NC_FIELDS) if k in r}
                for r in records
            ]
    return result


def run_task(task: Task,
             work_root: str,
             max_epochs: Optional[int] = None) -> dict:
    """Run one task in this process and return its row.

    Args:
        task (Task): What to run.
        work_root (str): Parent of the work dirs (a parent method's run is
            looked up there too).
        max_epochs (int, optional): Shorter schedule (pilots, tests).

    Returns:
        dict: The row (see the module docstring).
    """
    import torch
    from mmengine.runner import Runner

    import etf_plugin  # noqa: F401

    torch.set_num_threads(1)
    start = time.time()
    method = METHODS[task.method]
    work_dir = task.work_dir(work_root)
    if osp.isdir(work_dir):  # an interrupted attempt
        shutil.rmtree(work_dir)
    os.makedirs(work_dir)
    load_from = None
    if method.parent is not None:
        parent = task.parent_task
        pointer = osp.join(parent.work_dir(work_root), 'last_checkpoint')
        if not osp.exists(pointer):
            raise FileNotFoundError(f'{task.id} needs the run {parent.id} '
                                    f'first ({pointer} is missing).')
        with open(pointer) as f:
            load_from = f.read().strip()
    cfg, counts, order = _build_config(method, task, work_dir, load_from,
                                       max_epochs)
    row = dict(id=task.id, phase=task.phase, method=task.method,
               ratio=task.ratio, seed=task.seed, knobs=dict(task.knobs),
               config=method.config, max_epochs=cfg.train_cfg.max_epochs,
               class_counts=counts, init=INIT_MARK)
    if order is not None:
        row['class_order'] = order
    if task.parent_knobs:
        row['parent_knobs'] = dict(task.parent_knobs)
    if method.test_only:
        row.update(_test_only(method, cfg, counts))
    else:
        runner = Runner.from_cfg(cfg)
        val = _Predictions()
        runner.val_loop.evaluator.metrics.append(val)
        runner.train()
        held = _Predictions()
        runner.test_loop.evaluator.metrics.append(held)
        # The test loop alone: runner.test() would run the before_run hooks
        # a second time (the checkpoint hook refuses a work dir with
        # checkpoints in it).
        runner.test_loop.run()
        epochs = cfg.train_cfg.max_epochs
        val_epochs = [e for e in range(1, epochs + 1)
                      if e % VAL_INTERVAL == 0 or e == epochs]
        curve = [accuracy_metrics(pred, gt, counts, MANY_THR, FEW_THR)
                 for gt, pred in val.evaluations]
        row['test'] = _split_record(*val.evaluations[-1], counts)
        row['heldout'] = _split_record(*held.evaluations[-1], counts)
        row['curve'] = dict(epoch=val_epochs,
                            top1=[c['top1'] for c in curve],
                            few=[c.get('few') for c in curve])
        row['nc'] = _nc_records(work_dir, method.nc_every_epoch)
        if not any(m.parent == method.name for m in METHODS.values()):
            for name in os.listdir(work_dir):
                if name.endswith('.pth'):
                    os.remove(osp.join(work_dir, name))
    row['seconds'] = time.time() - start
    row['host'] = dict(python=platform.python_version(),
                       torch=torch.__version__, threads=torch.get_num_threads(),
                       cpu=_cpu_name(),
                       cpu_capability=torch.backends.cpu.get_cpu_capability())
    return row


def _cpu_name() -> str:
    """The processor's model name (CPU kernels, hence bits, depend on it)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _test_only(method: Method, cfg, counts) -> dict:
    """Choose the method's test-time knob on the held-out images of its
    training split, then test the parent's checkpoint with it."""
    from mmengine.runner import Runner
    from etf_plugin.utils import unwrap_model

    attribute = method.knob.key.split('.')[-1]

    def evaluate(runner, value):
        setattr(unwrap_model(runner.model).head, attribute, value)
        collector = _Predictions()
        runner.test_loop.evaluator.metrics.append(collector)
        if runner._has_loaded:  # the checkpoint is in: the loop alone
            runner.test_loop.run()
        else:
            runner.test()
        runner.test_loop.evaluator.metrics.remove(collector)
        return collector.evaluations[-1]

    heldout_runner = Runner.from_cfg(cfg)
    sweep = []
    for value in method.knob.values:
        gt, pred = evaluate(heldout_runner, value)
        sweep.append(dict(value=value, **_split_record(gt, pred, counts)))
    best = max(sweep, key=lambda r: r['macro'])  # first best on ties
    test_cfg = copy.deepcopy(cfg)
    test_cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    test_cfg.work_dir = osp.join(cfg.work_dir, 'test')
    test_cfg.experiment_name = cfg.experiment_name + '_test'
    gt, pred = evaluate(Runner.from_cfg(test_cfg), best['value'])
    return dict(knobs={method.knob.key: best['value']},
                heldout=best, heldout_sweep=[
                    {k: r[k] for k in ('value', 'top1', 'macro', 'few')
                     if k in r} for r in sweep],
                test=_split_record(gt, pred, counts))


# --------------------------------------------------------------------------
# The study: tasks, tuning, resuming


def tuning_tasks() -> List[Task]:
    """Every run at the tuning seeds: each grid value of every training knob
    (and the untuned recipe candidates)."""
    tasks = []
    for name in TUNED_AT_TUNING_SEEDS:
        knob = METHODS[name].knob
        values = knob.values if knob is not None else (None, )
        seeds = knob.seeds if knob is not None else TUNING_SEEDS
        for seed in seeds:
            for value in values:
                knobs = () if value is None else ((knob.key, value), )
                tasks.append(Task('tune', name, TUNING_RATIO, seed, knobs))
    # seed by seed: an interrupted tuning leaves whole seeds
    order = {name: i for i, name in enumerate(TUNED_AT_TUNING_SEEDS)}
    return sorted(tasks, key=lambda t: (t.seed, order[t.method]))


def _heldout_summary(rows: Sequence[dict]) -> dict:
    """``macro`` (mean), ``sd`` and ``n`` of the rows' held-out balanced
    accuracy."""
    macro = [r['heldout']['macro'] for r in rows]
    return dict(macro=float(np.mean(macro)), sd=float(np.std(macro, ddof=1)),
                n=len(rows))


def choose_knobs(rows: Iterable[dict]) -> Dict[str, dict]:
    """The training knobs chosen on the tuning seeds' held-out images.

    Returns:
        dict: ``{method: {'key', 'symbol', 'value', 'table'}}``, ``table``
        the held-out balanced accuracy of every value (mean over the tuning
        seeds); methods without all their tuning runs are missing.
    """
    rows = [r for r in rows if r['phase'] == 'tune' and not is_stale(r)]
    chosen = {}
    for name in TUNED_AT_TUNING_SEEDS:
        knob = METHODS[name].knob
        if knob is None:
            continue
        table = []
        for value in knob.values:
            found = [r for r in rows if r['method'] == name and
                     r['knobs'].get(knob.key) == value and
                     r['seed'] in knob.seeds]
            if len(found) < len(knob.seeds):
                break
            table.append(dict(value=value, **_heldout_summary(found)))
        else:
            best = max(table, key=lambda t: t['macro'])  # first on ties
            chosen[name] = dict(key=knob.key, symbol=knob.symbol,
                                value=best['value'], table=table)
    return chosen


def select_recipe(rows: Iterable[dict]) -> Optional[dict]:
    """The ETF recipe: the candidate with the best held-out balanced
    accuracy at the tuning seeds (tuned candidates at their chosen knob).

    Returns:
        dict | None: ``{'method', 'table'}``; None until every candidate's
        tuning runs are there.
    """
    rows = list(rows)
    chosen = choose_knobs(rows)
    table = []
    for name in RECIPE_CANDIDATES:
        knob = METHODS[name].knob
        if knob is not None and name not in chosen:
            return None
        found = [r for r in rows if r['phase'] == 'tune' and
                 r['method'] == name and r['seed'] in TUNING_SEEDS and
                 (knob is None or r['knobs'].get(
                     knob.key) == chosen[name]['value'])]
        if len(found) < len(TUNING_SEEDS):
            return None
        table.append(dict(method=name, **_heldout_summary(found)))
    best = max(table, key=lambda t: t['macro'])
    return dict(method=best['method'], table=table)


def eval_tasks(rows: Iterable[dict],
               methods: Sequence[str],
               seeds: Optional[Dict[float, Sequence[int]]] = None
               ) -> Tuple[List[Task], List[str]]:
    """The evaluation runs that can be defined now, and the methods still
    waiting for their tuning.

    With seeds at :data:`PERM_RATIO`, the arms of :data:`PERM_METHODS` (and
    their parents) also get a ``'perm'`` run per seed there: the same run
    with a class order drawn from the seed."""
    seeds = EVAL_SEEDS if seeds is None else seeds
    chosen = choose_knobs(rows)
    tasks, waiting = [], []
    def trained_knobs(name):
        knob = METHODS[name].knob
        if knob is None or knob.stage != 'train':
            return ()
        return ((knob.key, chosen[name]['value']), )

    for name in methods:
        parent = METHODS[name].parent
        needs = [n for n in (name, parent) if n is not None
                 and METHODS[n].knob is not None
                 and METHODS[n].knob.stage == 'train' and n not in chosen]
        if needs:
            waiting.append(name)
            continue
        knobs = trained_knobs(name)
        parent_knobs = () if parent is None else trained_knobs(parent)
        for ratio, ratio_seeds in seeds.items():
            for seed in ratio_seeds:
                tasks.append(Task('eval', name, ratio, seed, knobs,
                                  parent_knobs))
                if ratio == PERM_RATIO and _permuted(name):
                    tasks.append(Task('perm', name, ratio, seed, knobs,
                                      parent_knobs))
    return tasks, waiting


def _permuted(name: str) -> bool:
    """Whether ``name`` runs with permuted class orders too (an arm of
    :data:`PERM_METHODS`, or the parent of one)."""
    return name in PERM_METHODS or any(
        METHODS[m].parent == name for m in PERM_METHODS)


def load_rows(path: str) -> List[dict]:
    """The rows of a per-run file (a missing file has none)."""
    if not osp.exists(path):
        return []
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def append_row(path: str, row: dict) -> None:
    """Append one row and flush it to disk."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(row, sort_keys=True) + '\n')
        f.flush()
        os.fsync(f.fileno())


def _worker(task: Task, work_root: str, max_epochs: Optional[int],
            sender) -> None:
    """Run a task in its own forked process, its output sent to a log file,
    and send ``('row', row)`` or ``('error', text)`` through ``sender``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ['OMP_NUM_THREADS'] = '1'
    log = task.work_dir(work_root) + '.log'
    os.makedirs(work_root, exist_ok=True)
    with open(log, 'w') as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    sys.stdout = os.fdopen(1, 'w', buffering=1)
    sys.stderr = os.fdopen(2, 'w', buffering=1)
    try:
        sender.send(('row', run_task(task, work_root, max_epochs)))
    except Exception as error:  # noqa: BLE001
        traceback.print_exc()
        sender.send(('error', repr(error)))
    finally:
        sender.close()


def _start_run(context, task: Task, work_root: str,
               max_epochs: Optional[int]):
    """Fork one run; returns ``(process, receiver)``."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_worker, args=(task, work_root, max_epochs, sender),
        daemon=True)
    process.start()
    sender.close()  # the child holds the only writing end
    return process, receiver


def _finished_run(process, receiver) -> Optional[Tuple[str, object]]:
    """``('row', row)`` / ``('error', text)`` of a finished run, None while
    it runs."""
    if not receiver.poll() and process.is_alive():
        return None
    try:
        message = receiver.recv() if receiver.poll() else None
    except EOFError:  # the run process ended without sending anything
        message = None
    process.join()
    receiver.close()
    return message or ('error', f'the run process ended without a result '
                                f'(exit status {process.exitcode})')


def run_study(out: str,
              work_root: str,
              methods: Optional[Sequence[str]] = None,
              seeds: Optional[Dict[float, Sequence[int]]] = None,
              workers: int = 2,
              max_epochs: Optional[int] = None,
              tune: bool = True,
              log=print) -> List[dict]:
    """Run every missing run of the study and append it to ``out``.

    The tuning runs come first (the tuned methods wait for them), then the
    parents of other runs. Each run is a fresh process forked from this
    one, so no run inherits another's state. (Not a ``multiprocessing.Pool``
    with ``maxtasksperchild=1``: its terminate() can miss a worker it
    forks meanwhile and then wait for it forever.)

    Args:
        out (str): The per-run JSON-lines file; its rows count as done.
        work_root (str): Parent of the runs' work dirs.
        methods (Sequence[str], optional): Evaluation arms (default: all).
        seeds (dict, optional): ``{ratio: seeds}`` (default
            :data:`EVAL_SEEDS`).
        workers (int): Runs at a time. Defaults to 2.
        max_epochs (int, optional): Shorter schedule (pilots, tests).
        tune (bool): Run the tuning runs. Defaults to True.
        log (callable): Progress messages.

    Returns:
        list[dict]: All rows of ``out``.
    """
    methods = list(METHODS) if methods is None else list(methods)
    for name in list(methods):  # a child needs its parent
        parent = METHODS[name].parent
        if parent is not None and parent not in methods:
            methods.insert(0, parent)
    rows = [r for r in load_rows(out) if not is_stale(r)]
    done = {r['id'] for r in rows}
    failed: Dict[str, str] = {}
    running: Dict[str, Tuple[Task, object]] = {}
    # A terminated study stops its runs too (the finally clause below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    context = multiprocessing.get_context('fork')
    start = time.time()

    def ready_tasks():
        tasks = tuning_tasks() if tune else []
        evals, _ = eval_tasks(rows, methods, seeds)
        # The tuning ratio first (the goal's comparison), parents first.
        # seed by seed: an interrupted study leaves paired seeds
        tasks += sorted(evals, key=lambda t: (
            t.ratio != TUNING_RATIO, METHODS[t.method].parent is not None,
            t.seed, methods.index(t.method)))
        ready = []
        for task in tasks:
            if task.id in done or task.id in running or task.id in failed:
                continue
            parent = task.parent_task
            if parent is not None:
                parent_id = parent.id
                if parent_id not in done:
                    if parent_id in failed:
                        failed[task.id] = f'parent {parent_id} failed'
                    continue
            ready.append(task)
        return ready

    try:
        while True:
            for task in ready_tasks():
                if len(running) >= workers:
                    break
                running[task.id] = (task, _start_run(
                    context, task, work_root, max_epochs))
            if not running:
                break
            time.sleep(0.5)
            for task_id, (task, run) in list(running.items()):
                finished = _finished_run(*run)
                if finished is None:
                    continue
                del running[task_id]
                kind, row = finished
                if kind != 'row':
                    failed[task_id] = row
                    log(f'[study] FAILED {task_id}: {row} (log: '
                        f'{task.work_dir(work_root)}.log)')
                    continue
                append_row(out, row)
                rows.append(row)
                done.add(task_id)
                test = row['test']
                log(f"[study] {task_id}: test top-1 {test['top1']:.1f} few "
                    f"{test.get('few', float('nan')):.1f}, held-out macro "
                    f"{row['heldout']['macro']:.1f} ({row['seconds']:.0f} s; "
                    f'{len(done)} done, {time.time() - start:.0f} s)')
    finally:
        for _, (process, receiver) in running.values():
            process.terminate()
            process.join()
            receiver.close()
    _, waiting = eval_tasks(rows, methods, seeds)
    if waiting:
        log(f'[study] not run: {waiting} (their tuning is incomplete)')
    if failed:
        log(f'[study] {len(failed)} runs failed: {sorted(failed)}')
    return rows


def rerun(row: dict, work_root: str) -> Tuple[dict, List[str]]:
    """Run a stored row's task again (in this process) and list the fields
    that differ (``seconds`` and ``host`` are not compared).

    A test-only or cRT row needs its parent's checkpoint in ``work_root``.

    Returns:
        tuple: The new row and the differing top-level keys.
    """
    knobs = row['knobs']
    method = METHODS[row['method']]
    if method.knob is not None and method.knob.stage == 'test':
        knobs = {}  # chosen again by the run itself
    task = Task(row['phase'], row['method'], row['ratio'], row['seed'],
                tuple(knobs.items()),
                tuple(row.get('parent_knobs', {}).items()))
    new = run_task(task, work_root, row.get('max_epochs'))
    # 'init' marks the rows written since the init change (INIT_MARK)
    different = [k for k in sorted(set(row) | set(new))
                 if k not in ('seconds', 'host', 'init')
                 and row.get(k) != new.get(k)]
    return new, different


__all__ = [
    'METHODS', 'Method', 'Knob', 'Task', 'RECIPE_CANDIDATES',
    'EVAL_SEEDS', 'TUNING_SEEDS', 'LA_TUNING_SEEDS', 'LA_FAMILY',
    'TUNING_RATIO', 'HELDOUT_PER_CLASS', 'INIT_MARK', 'PERM_METHODS',
    'PERM_RATIO', 'is_stale',
    'build_config', 'run_task', 'run_study', 'rerun', 'choose_knobs',
    'select_recipe', 'eval_tasks', 'tuning_tasks', 'load_rows', 'append_row',
    'decode_labels', 'nc_groups'
]
