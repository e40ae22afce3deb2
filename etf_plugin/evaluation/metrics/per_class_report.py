"""``PerClassReport``: a table per class (training and test samples,
accuracy, mean confidence, the class most often predicted instead) written
as CSV and Markdown, and a figure of accuracy against training samples."""
import csv
import io
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.long_tail import shot_groups
from etf_plugin.functional.per_class import per_class_statistics
from etf_plugin.utils.io import atomic_write
from .scores import batch_labels_and_scores

CSV_FILE = 'per_class.csv'
MARKDOWN_FILE = 'per_class.md'
FIGURE_FILE = 'accuracy_vs_train_count.png'
COLUMNS = ('class', 'name', 'group', 'train_count', 'test_count',
           'accuracy', 'mean_confidence', 'most_confused',
           'most_confused_rate')


@METRICS.register_module()
class PerClassReport(ClassCountsConsumer, BaseMetric):
    """Write a per-class report of the evaluation to ``out_dir``.

    The table has one row per class: its shot group, training samples (from
    ``ClassCountsHook``), test samples, top-1 accuracy, mean top-1
    confidence (over all its test samples, right or wrong), the wrong class
    predicted most often for it and the share of its samples predicted as
    that class. Accuracies, confidences and shares are in percent.

    Files, in ``out_dir`` (made if needed; rank 0 writes):

    - ``per_class.csv`` and ``per_class.md``: the table;
    - ``accuracy_vs_train_count.png``: accuracy of every class against its
      training samples on a log axis, the shot thresholds marked.

    It returns no metric (like MMEngine's ``DumpResults``). Add it to a
    config's ``test_evaluator`` to get the report from any test run, e.g.
    MMPretrain's own ``tools/test.py``, or use
    ``tools/analysis/per_class_report.py CONFIG CHECKPOINT``, which does.

    Args:
        out_dir (str): Directory of the report.
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the run's.
        counts_file (str, optional): Path of a counts file, instead.
        many_thr (float): Many-shot classes have more training samples than
            this. Defaults to 100.
        few_thr (float): Few-shot classes have fewer training samples than
            this. Defaults to 20.
        title (str, optional): Label of the model in the figure. Defaults to
            None (``'model'``).
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Unused (no metric is returned); kept for the
            ``BaseMetric`` interface.
        collect_dir (str, optional): Directory used to collect results on the
            CPU. Defaults to None.
    """
    default_prefix: Optional[str] = 'per_class'

    def __init__(self,
                 out_dir: str,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 many_thr: float = 100,
                 few_thr: float = 20,
                 title: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        shot_groups([], many_thr, few_thr)
        self.out_dir = out_dir
        self.many_thr, self.few_thr = many_thr, few_thr
        self.title = title or 'model'
        self._init_class_counts(class_counts, counts_file)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store label, top-1 prediction and confidence of every sample.

        Args:
            data_batch: A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): The model outputs of the batch.
        """
        if not data_samples:
            return
        labels, scores, predictions = batch_labels_and_scores(
            data_samples, type(self).__name__)
        confidences = scores.double().gather(1, predictions[:, None])[:, 0]
        self.results.extend(
            zip(labels.tolist(), predictions.tolist(), confidences.tolist()))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """Write the report from all ranks' records.

        Args:
            results (list[tuple]): Records from :meth:`process`.

        Returns:
            dict: Empty.
        """
        class_counts = self.class_counts
        if not results:
            return {}
        labels, predictions, confidences = zip(*results)
        stats = per_class_statistics(labels, predictions, confidences,
                                     len(class_counts))
        names = (self.dataset_meta or {}).get('classes')
        rows = per_class_rows(stats, class_counts, names, self.many_thr,
                              self.few_thr)
        write_per_class_report(rows, self.out_dir)
        from etf_plugin.visualization.long_tail_eval import \
            accuracy_vs_count_figure
        figure = accuracy_vs_count_figure(
            {self.title: rows_to_arrays(rows)},
            shot_thresholds=(self.few_thr, self.many_thr),
            title='Per-class accuracy against training samples')
        figure.savefig(osp.join(self.out_dir, FIGURE_FILE), dpi=100)
        return {}


def per_class_rows(stats: Dict[str, np.ndarray],
                   class_counts: np.ndarray,
                   names: Optional[Sequence[str]] = None,
                   many_thr: float = 100,
                   few_thr: float = 20) -> List[dict]:
    """The rows of the report, one per class, values in percent.

    Args:
        stats (dict[str, np.ndarray]): From
            :func:`~etf_plugin.functional.per_class.per_class_statistics`.
        class_counts (np.ndarray): Training samples per class.
        names (Sequence[str], optional): Class names; indices if None.
        many_thr (float): Many-shot threshold. Defaults to 100.
        few_thr (float): Few-shot threshold. Defaults to 20.

    Returns:
        list[dict]: One dict per class with the keys of :data:`COLUMNS`.
    """
    num_classes = len(class_counts)
    names = [str(n) for n in names] if names is not None else [
        str(k) for k in range(num_classes)]
    group = np.empty(num_classes, dtype=object)
    for name, members in shot_groups(class_counts, many_thr,
                                     few_thr).items():
        group[members] = name
    rows = []
    for k in range(num_classes):
        confused = int(stats['most_confused'][k])
        rows.append(
            dict(
                zip(COLUMNS, (
                    k, names[k], group[k], int(class_counts[k]),
                    int(stats['test_count'][k]),
                    _percent(stats['accuracy'][k]),
                    _percent(stats['mean_confidence'][k]),
                    names[confused] if confused >= 0 else '',
                    _percent(stats['most_confused_rate'][k])))))
    return rows


def _percent(fraction: float) -> Optional[float]:
    return None if math.isnan(fraction) else round(float(fraction) * 100, 2)


def write_per_class_report(rows: List[dict], out_dir: str) -> None:
    """Write ``per_class.csv`` and ``per_class.md`` to ``out_dir``.

    Args:
        rows (list[dict]): From :func:`per_class_rows`.
        out_dir (str): The directory (made if needed).
    """
    os.makedirs(out_dir, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(osp.join(out_dir, CSV_FILE), table.getvalue().encode())
    atomic_write(
        osp.join(out_dir, MARKDOWN_FILE), per_class_markdown(rows).encode())


def per_class_markdown(rows: List[dict]) -> str:
    """The report as a Markdown table (accuracy and confidence in %)."""
    header = ('| class | group | train | test | accuracy (%) | mean '
              'confidence (%) | most confused with (% of the class) |\n'
              '|---|---|---:|---:|---:|---:|---|\n')
    lines = []
    for row in rows:
        confused = (f'{row["most_confused"]} ({row["most_confused_rate"]:.1f})'
                    if row['most_confused'] != '' else '-')
        lines.append(
            f'| {row["name"]} | {row["group"]} | {row["train_count"]} | '
            f'{row["test_count"]} | {format_percent(row["accuracy"])} | '
            f'{format_percent(row["mean_confidence"])} | {confused} |')
    return header + '\n'.join(lines) + '\n'


def format_percent(value: Optional[float]) -> str:
    """A percentage of the tables, one decimal; '-' for None."""
    return '-' if value is None else f'{value:.1f}'


def read_per_class_csv(path: str) -> List[dict]:
    """Read a ``per_class.csv`` back into rows (numbers as numbers).

    Args:
        path (str): The CSV file, or the report directory holding it.
    """
    if osp.isdir(path):
        path = osp.join(path, CSV_FILE)
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ('class', 'train_count', 'test_count'):
            row[key] = int(row[key])
        for key in ('accuracy', 'mean_confidence', 'most_confused_rate'):
            row[key] = float(row[key]) if row[key] != '' else None
    return rows


def rows_to_arrays(rows: List[dict]) -> Dict[str, np.ndarray]:
    """``train_count`` and ``accuracy`` (percent, NaN if untested) arrays
    of report rows, as :func:`accuracy_vs_count_figure` takes them."""
    return dict(
        train_count=np.array([r['train_count'] for r in rows]),
        accuracy=np.array([
            np.nan if r['accuracy'] is None else r['accuracy'] for r in rows
        ]))
