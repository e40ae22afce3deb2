"""The long-tailed detection benchmark behind docs/mmdet.md: train and
evaluate every row (RoI classifier + loss) on the synthetic shapes with the
same detector, schedule, data and seeds, keep per-run results in a JSON file
(resumable), and turn them into the table.

``benchmarks/det_long_tail.py`` is the command-line front end.
"""
import datetime
import json
import os
import os.path as osp
import platform
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from etf_plugin.functional.long_tail import class_sizes, shot_groups
from etf_plugin.utils.io import atomic_write

CONFIG_DIR = osp.join('configs', 'mmdet')
# row key -> (what the row is, its config under configs/mmdet)
ROWS = {
    'linear-ce': ('Linear + CE (mmdet default)',
                  'faster-rcnn_r18-tiny_fpn_synthetic-shapes-lt.py'),
    'linear-seesaw': ('Linear + SeesawLoss',
                      'faster-rcnn_r18-tiny_fpn_seesaw_synthetic-shapes-lt.py'),
    'etf-objectness': (
        'ETF (K vertices) + objectness: DR + BCE',
        'faster-rcnn_r18-tiny_fpn_etf-objectness-dr_synthetic-shapes-lt.py'),
}
SPLITS = ('test', 'heldout')
# LVIS's rare group is <= 10 training images; its frequent threshold (100)
# is scaled to this 6-class set so that each group holds two classes.
RARE_MAX = 10
FREQUENT_MIN = 41
GROUPS = ('rare', 'common', 'frequent')


def instance_counts(dataset, num_classes: int) -> np.ndarray:
    """Training instances per class of a detection dataset, from its
    annotations (``get_cat_ids``), without loading images.

    Args:
        dataset: An mmdet dataset.
        num_classes (int): Number of classes.

    Returns:
        np.ndarray: int64 counts, shape ``(num_classes,)``.
    """
    labels = [
        label for i in range(len(dataset)) for label in dataset.get_cat_ids(i)
    ]
    return class_sizes(np.asarray(labels, dtype=np.int64), num_classes)


def frequency_groups(counts: Sequence[int],
                     rare_max: int = RARE_MAX,
                     frequent_min: int = FREQUENT_MIN) -> Dict[str, list]:
    """LVIS-style class groups by training instances.

    Args:
        counts (Sequence[int]): Training instances per class.
        rare_max (int): Classes with at most this many are rare.
        frequent_min (int): Classes with at least this many are frequent.

    Returns:
        dict[str, list[int]]: ``rare``, ``common``, ``frequent`` class
        indices.
    """
    groups = shot_groups(counts, many_thr=frequent_min - 1,
                         few_thr=rare_max + 1)
    return dict(rare=groups['few'].tolist(),
                common=groups['medium'].tolist(),
                frequent=groups['many'].tolist())


def build_config(row: str,
                 seed: int,
                 work_dir: str,
                 split: str = 'test',
                 options: Optional[dict] = None,
                 repo_root: str = '.'):
    """The mmengine config of one run.

    Args:
        row (str): A key of :data:`ROWS`.
        seed (int): Training seed (``randomness.seed``); the data are the
            config's, the same for every seed and row.
        work_dir (str): Where the runner writes.
        split (str): ``'test'`` (the reported split) or ``'heldout'`` (the
            config's ``heldout_dataset``, for tuning).
        options (dict, optional): ``--cfg-options`` style overrides.
        repo_root (str): Repository root holding ``configs/mmdet``.

    Returns:
        mmengine.Config: The config.
    """
    from mmengine.config import Config

    if row not in ROWS:
        raise ValueError(f'Unknown row {row!r}; choose from {list(ROWS)}.')
    if split not in SPLITS:
        raise ValueError(f'Unknown split {split!r}; choose from {SPLITS}.')
    cfg = Config.fromfile(osp.join(repo_root, CONFIG_DIR, ROWS[row][1]))
    if options:
        cfg.merge_from_dict(dict(options))
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    # One evaluation, at the end, on the chosen split; one checkpoint. No
    # validation loop at all (a large val_interval would not do: mmengine
    # validates after the last epoch whatever val_interval says, on the
    # reported split, also when tuning).
    max_epochs = cfg.train_cfg.max_epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1)
    if split == 'heldout':
        cfg.test_dataloader = dict(cfg.test_dataloader)
        cfg.test_dataloader['dataset'] = cfg.heldout_dataset
    return cfg


def run_one(row: str,
            seed: int,
            work_dir: str,
            split: str = 'test',
            options: Optional[dict] = None,
            repo_root: str = '.',
            test_options: Optional[List[dict]] = None) -> dict:
    """Train one row with one seed and evaluate it.

    Args:
        row, seed, work_dir, split, options, repo_root: See
            :func:`build_config`.
        test_options (list[dict], optional): Extra evaluations of the same
            trained model, each after setting these attributes of the bbox
            head's ``loss_cls`` (e.g. ``dict(logit_scale=5)``, which only
            changes the scores); results under ``'test_variants'``. Rows
            whose loss lacks an attribute skip that evaluation.

    Returns:
        dict: ``mAP``, ``mAP_50``, ``class_ap`` (per class, COCO AP at IoU
        0.5:0.95), ``train_counts``, ``seconds`` and the run's settings.
    """
    from mmengine.runner import Runner

    cfg = build_config(row, seed, work_dir, split, options, repo_root)
    cfg.experiment_name = (f'{row}_seed{seed}_{split}_'
                           f'{datetime.datetime.now():%Y%m%d_%H%M%S_%f}')
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_seconds = time.time() - start
    dataset = runner.train_dataloader.dataset
    classes = list(dataset.metainfo['classes'])
    counts = instance_counts(dataset, len(classes))
    result = dict(
        row=row,
        seed=seed,
        split=split,
        options=dict(options or {}),
        classes=classes,
        train_counts=counts.tolist(),
        train_seconds=round(train_seconds, 1),
        **_evaluate(runner, classes))
    variants = []
    loss_cls = runner.model.roi_head.bbox_head.loss_cls
    for attributes in test_options or []:
        if not all(hasattr(loss_cls, key) for key in attributes):
            continue  # e.g. logit_scale of a CE row
        saved = {key: getattr(loss_cls, key) for key in attributes}
        for key, value in attributes.items():
            setattr(loss_cls, key, value)
        variants.append(dict(attributes=attributes,
                             **_evaluate(runner, classes)))
        for key, value in saved.items():
            setattr(loss_cls, key, value)
    if variants:
        result['test_variants'] = variants
    result['seconds'] = round(time.time() - start, 1)
    return result


def _evaluate(runner, classes: List[str]) -> dict:
    metrics = runner.test()
    return dict(
        mAP=metrics['coco/bbox_mAP'],
        mAP_50=metrics['coco/bbox_mAP_50'],
        class_ap=[metrics[f'coco/{name}_precision'] for name in classes])


def group_ap(result: dict) -> Dict[str, float]:
    """``AP_r``, ``AP_c``, ``AP_f``: the mean per-class AP of each group.

    Args:
        result (dict): One run of :func:`run_one`.

    Returns:
        dict[str, float]: AP of each non-empty group.
    """
    groups = frequency_groups(result['train_counts'])
    return {
        name: float(np.mean([result['class_ap'][k] for k in members]))
        for name, members in groups.items() if members
    }


def load_results(path: str) -> dict:
    """The results file (``{'runs': {key: result}}``), empty if absent."""
    if not osp.exists(path):
        return dict(runs={})
    with open(path) as f:
        return json.load(f)


def save_results(path: str, results: dict) -> None:
    """Write the results file atomically
    (:func:`~etf_plugin.utils.io.atomic_write`), so an interrupted benchmark
    keeps every finished run."""
    atomic_write(
        path, (json.dumps(results, indent=1, sort_keys=True) +
               '\n').encode('utf-8'))


def run_key(row: str, seed: int, split: str, options: Optional[dict]) -> str:
    """Key of a run in the results file."""
    suffix = ''.join(f' {k}={v}' for k, v in sorted((options or {}).items()))
    return f'{split}/{row}/seed{seed}{suffix}'


def environment() -> dict:
    """Versions and machine, stored with the results."""
    import mmdet
    import mmengine
    import torch
    return dict(
        python=platform.python_version(),
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        mmdet=mmdet.__version__,
        threads=torch.get_num_threads(),
        machine=platform.machine(),
        cpus=os.cpu_count())


def summarize(runs: Sequence[dict], rows: Sequence[str]) -> List[dict]:
    """Mean and sample std over seeds of every metric, per row.

    Args:
        runs (Sequence[dict]): Results of :func:`run_one`.
        rows (Sequence[str]): Rows to summarise, in table order.

    Returns:
        list[dict]: Per row: ``row``, ``label``, ``seeds`` and for every
        metric ``(mean, std)``.
    """
    table = []
    for row in rows:
        mine = sorted((r for r in runs if r['row'] == row),
                      key=lambda r: r['seed'])
        if not mine:
            continue
        values = {
            'mAP': [r['mAP'] for r in mine],
            'mAP_50': [r['mAP_50'] for r in mine],
        }
        for name in GROUPS:
            values[f'AP_{name[0]}'] = [group_ap(r).get(name, np.nan)
                                       for r in mine]
        entry = dict(row=row, label=ROWS[row][0],
                     seeds=[r['seed'] for r in mine])
        for key, vals in values.items():
            vals = np.asarray(vals, dtype=float)
            std = float(vals.std(ddof=1)) if len(vals) > 1 else float('nan')
            entry[key] = (float(vals.mean()), std)
        table.append(entry)
    return table


METRICS = ('mAP', 'mAP_50', 'AP_r', 'AP_c', 'AP_f')


def format_table(table: Sequence[dict]) -> str:
    """Markdown table of :func:`summarize`'s output, mean ± std."""
    header = ('| RoI classifier + loss | seeds | mAP | mAP@0.5 | AP rare | '
              'AP common | AP frequent |')
    lines = [header, '|---|---|---|---|---|---|---|']
    for entry in table:
        cells = [f'{entry[m][0]:.3f} ± {entry[m][1]:.3f}' for m in METRICS]
        lines.append(f'| {entry["label"]} | {len(entry["seeds"])} | ' +
                     ' | '.join(cells) + ' |')
    return '\n'.join(lines)


DOCS_BEGIN = '<!-- det_long_tail table: begin (benchmarks/det_long_tail.py) -->'
DOCS_END = '<!-- det_long_tail table: end -->'


def update_docs(path: str, text: str) -> None:
    """Replace the generated block between :data:`DOCS_BEGIN` and
    :data:`DOCS_END` in ``path`` by ``text``.

    Args:
        path (str): The Markdown file (docs/mmdet.md).
        text (str): The new block content.
    """
    with open(path) as f:
        doc = f.read()
    if DOCS_BEGIN not in doc or DOCS_END not in doc:
        raise ValueError(f'{path} has no generated block; add the lines '
                         f'{DOCS_BEGIN!r} and {DOCS_END!r} where the table '
                         f'goes.')
    head, rest = doc.split(DOCS_BEGIN, 1)
    _, tail = rest.split(DOCS_END, 1)
    with open(path, 'w') as f:
        f.write(f'{head}{DOCS_BEGIN}\n{text}\n{DOCS_END}{tail}')
