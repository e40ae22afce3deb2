"""The long-tail report of a checkpoint: the test-config edits that add the
per-class report (and the calibration and label-shift metrics, where a
config lacks them), and the files that compare several reports.

``tools/analysis/per_class_report.py`` is argument parsing over these.
"""
import json
import os
import os.path as osp
from typing import List, Optional

import numpy as np

from etf_plugin.functional.label_shift import shift_name
from etf_plugin.utils.io import atomic_write
from .metrics.per_class_report import (FIGURE_FILE, format_percent,
                                       read_per_class_csv, rows_to_arrays)

METRICS_FILE = 'metrics.json'
SHIFT_FIGURE_FILE = 'lt_shift.png'
COMPARISON_FILE = 'comparison.md'
SHOT_THRESHOLD_KEYS = ('many_thr', 'few_thr')


def add_long_tail_report(cfg, out_dir: str, title: str,
                         logit_adjust: Optional[str] = None) -> None:
    """Edit ``cfg.test_evaluator`` in place for a long-tail report.

    Adds ``PerClassReport(out_dir)``, and ``LongTailCalibration`` and
    ``LabelShiftAccuracy`` where the config has none; every added metric
    takes the shot thresholds of the config's ``LongTailAccuracy``.

    Args:
        cfg (mmengine.Config): The test config.
        out_dir (str): Directory of the report.
        title (str): Label of the model in figures and tables.
        logit_adjust (str, optional): ``'train'`` or ``'uniform'``: turn on
            post-hoc logit adjustment to each test prior in every
            ``LabelShiftAccuracy``, from that source prior. None leaves the
            config's setting.
    """
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, dict):
        evaluator = [evaluator] if 'type' in evaluator else list(
            evaluator.get('metrics', []))
    evaluator = list(evaluator)
    types = [m.get('type') for m in evaluator]
    thresholds = {}
    for metric in evaluator:
        if metric.get('type') == 'LongTailAccuracy':
            thresholds = {
                k: metric[k]
                for k in SHOT_THRESHOLD_KEYS if k in metric
            }
    if 'LongTailCalibration' not in types:
        evaluator.append(dict(type='LongTailCalibration', **thresholds))
    if 'LabelShiftAccuracy' not in types:
        evaluator.append(dict(type='LabelShiftAccuracy'))
    for metric in evaluator:
        if metric.get('type') == 'LabelShiftAccuracy' and logit_adjust:
            metric.update(logit_adjust=True, adjust_from=logit_adjust)
    evaluator.append(
        dict(type='PerClassReport', out_dir=out_dir, title=title,
             **thresholds))
    cfg.test_evaluator = evaluator


def save_report_metrics(out_dir: str, title: str, metrics: dict,
                        **info) -> None:
    """Write the test metrics of one report to ``out_dir/metrics.json``.

    Args:
        out_dir (str): Directory of the report.
        title (str): Label of the model.
        metrics (dict): What ``runner.test()`` returned.
        **info: More to record (config, checkpoint).
    """
    os.makedirs(out_dir, exist_ok=True)
    record = dict(title=title, **info, metrics={
        k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    atomic_write(
        osp.join(out_dir, METRICS_FILE),
        (json.dumps(record, indent=1, sort_keys=True) + '\n').encode())


def load_report(out_dir: str) -> dict:
    """A report written by ``tools/analysis/per_class_report.py``: its
    ``metrics.json`` record with the per-class ``rows`` added."""
    with open(osp.join(out_dir, METRICS_FILE)) as f:
        record = json.load(f)
    record['rows'] = read_per_class_csv(out_dir)
    return record


def shift_curves(metrics: dict, ratios, prefix: str = 'lt_shift') -> dict:
    """``{'': {ratio: accuracy}, 'la_': {...}}`` from the metric names of
    ``LabelShiftAccuracy`` (the ``la_`` curve only if it was measured)."""
    curves = {}
    for variant in ('', 'la_'):
        curve = {
            ratio: metrics[f'{prefix}/{variant}{shift_name(ratio)}']
            for ratio in ratios
            if f'{prefix}/{variant}{shift_name(ratio)}' in metrics
        }
        if curve:
            curves[variant] = curve
    return curves


def write_comparison(reports: List[dict], out_dir: str, ratios,
                     shot_thresholds=(), summary_keys=()) -> None:
    """Overlay several reports: the accuracy-vs-training-count figure, the
    shifted-accuracy figure and ``comparison.md`` (a summary table of
    ``summary_keys`` and a per-class table, one column per report).

    Args:
        reports (list[dict]): From :func:`load_report`.
        out_dir (str): Where to write.
        ratios (Sequence[float]): Test imbalance ratios to plot.
        shot_thresholds (Sequence[float]): Drawn on the per-class figure.
        summary_keys (Sequence[str]): Metrics of the summary table.
    """
    from etf_plugin.visualization.long_tail_eval import (
        accuracy_vs_count_figure, label_shift_figure)
    figure = accuracy_vs_count_figure(
        {r['title']: rows_to_arrays(r['rows']) for r in reports},
        shot_thresholds=shot_thresholds,
        title='Per-class accuracy against training samples')
    figure.savefig(osp.join(out_dir, FIGURE_FILE), dpi=100)
    curves, points = {}, {}
    counts = np.array([row['train_count'] for row in reports[0]['rows']])
    for report in reports:
        for variant, curve in shift_curves(report['metrics'],
                                           ratios).items():
            label = report['title'] + (' + LA to the test prior'
                                       if variant else '')
            curves[label] = curve
        accuracy = np.array([
            np.nan if r['accuracy'] is None else r['accuracy']
            for r in report['rows']
        ])
        keep = ~np.isnan(accuracy)
        points[report['title']] = float(
            (counts[keep] * accuracy[keep]).sum() / counts[keep].sum())
    positive = counts[counts > 0]
    figure = label_shift_figure(
        curves, train_ratio=positive.max() / positive.min(),
        train_points=points,
        title='Accuracy under shifted test label distributions')
    figure.savefig(osp.join(out_dir, SHIFT_FIGURE_FILE), dpi=100)
    atomic_write(
        osp.join(out_dir, COMPARISON_FILE),
        comparison_markdown(reports, summary_keys).encode())


def comparison_markdown(reports: List[dict], summary_keys=()) -> str:
    """The summary and per-class tables of :func:`write_comparison`."""
    titles = [r['title'] for r in reports]
    lines = ['| metric | ' + ' | '.join(titles) + ' |',
             '|---|' + '---:|' * len(titles)]
    for key in summary_keys:
        values = [r['metrics'].get(key) for r in reports]
        if all(v is None for v in values):
            continue
        lines.append(f'| {key} | ' + ' | '.join(
            '-' if v is None else f'{v:.2f}' for v in values) + ' |')
    lines += ['', '| class | group | train | test | ' + ' | '.join(
        f'accuracy {t} | confidence {t} | most confused {t}' for t in titles)
        + ' |', '|---|---|---:|---:|' + '---:|---:|---|' * len(titles)]
    by_class = zip(*(r['rows'] for r in reports))
    for rows in by_class:
        first = rows[0]
        cells = []
        for row in rows:
            confused = (f'{row["most_confused"]} '
                        f'({row["most_confused_rate"]:.0f} %)'
                        if row['most_confused'] else '-')
            cells += [
                format_percent(row['accuracy']),
                format_percent(row['mean_confidence']), confused
            ]
        lines.append(f'| {first["name"]} | {first["group"]} | '
                     f'{first["train_count"]} | {first["test_count"]} | ' +
                     ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
