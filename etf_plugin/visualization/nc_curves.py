"""Neural-collapse records: read and write ``nc_metrics.json`` files, and
plot them.

Shared by :class:`~etf_plugin.engine.hooks.NeuralCollapseHook` (one run) and
``tools/analysis/plot_nc.py`` (several runs overlaid).
"""
import json
import warnings
from typing import Dict, List, Optional, Sequence

from etf_plugin.utils.io import atomic_write

# What a reader looks at first: collapse (NC1), simplex geometry (NC2),
# alignment with the classifier (NC3), NCC agreement (NC4), minority collapse.
DEFAULT_METRICS = ('nc1', 'nc2_equinorm', 'nc2_equiangle', 'nc2_etf_dist',
                   'nc3', 'nc4', 'wm_cos', 'mc_means_cos_few')
# Metrics that fall over orders of magnitude during training.
LOG_SCALE_METRICS = ('nc1', )
# Panel titles and y-axis labels, in words.
METRIC_LABELS = {
    'nc1': ('NC1: within-class variability', 'tr(Σ_W Σ_B⁺) / K'),
    'nc2_equinorm': ('NC2: spread of class-mean norms', 'std / mean of ‖μ_k‖'),
    'nc2_equiangle': ('NC2: distance from the simplex angle',
                      'mean |cos + 1/(K−1)|'),
    'nc2_cos_std': ('NC2: spread of class-mean angles', 'std of cos'),
    'nc2_etf_dist': ('NC2: distance of the means from an ETF',
                     '‖G/‖G‖ − ETF‖_F'),
    'nc3': ('NC3: classifier-mean misalignment', '‖W/‖W‖ − M/‖M‖‖²_F'),
    'nc4': ('NC4: classifier vs nearest class mean', 'disagreement (fraction)'),
    'wm_cos': ('Class means vs classifier rows', 'mean cos(w_k, μ_k)'),
    'mc_means_cos_few': ('Minority collapse: few-shot class means',
                         'mean pairwise cos'),
    'mc_means_cos_medium': ('Medium-shot class means', 'mean pairwise cos'),
    'mc_means_cos_many': ('Many-shot class means', 'mean pairwise cos'),
    'mc_w_cos_few': ('Minority collapse: few-shot classifier rows',
                     'mean pairwise cos'),
}
# Metrics on pairwise cosines, drawn with the simplex value -1/(K-1).
PAIRWISE_COS_METRICS = ('mc_means_cos_few', 'mc_means_cos_medium',
                        'mc_means_cos_many', 'mc_w_cos_few')


def load_nc_records(json_file: str,
                    latest_per_iter: bool = True) -> List[dict]:
    """Read the measurements a ``NeuralCollapseHook`` wrote.

    The file holds one JSON object per line. A line that does not parse (a
    record torn by a crash of an older writer) is skipped with a warning;
    the hook's next write drops it from the file.

    Args:
        json_file (str): Path of an ``nc_metrics.json``.
        latest_per_iter (bool): Keep one record per training iteration, the
            later one (a resumed run may measure an iteration twice), sorted
            by iteration. Defaults to True; False returns every valid line in
            file order.

    Returns:
        list[dict]: The records.
    """
    records = []
    with open(json_file, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f'{json_file}:{number}: skipping a torn or '
                              f'corrupted record ({line[:40]!r}...).')
    return latest_record_per_iter(records) if latest_per_iter else records


def latest_record_per_iter(records: Sequence[dict]) -> List[dict]:
    """One record per training iteration, the later one in ``records`` (a
    resumed run may measure an iteration twice), sorted by iteration.

    Args:
        records (Sequence[dict]): Records in file order.

    Returns:
        list[dict]: The kept records (the same objects, not copies).
    """
    by_iter = {record['iter']: record for record in records}
    return [by_iter[key] for key in sorted(by_iter)]


def save_nc_records(json_file: str, records: Sequence[dict]) -> None:
    """Write ``records`` as JSON lines, atomically
    (:func:`~etf_plugin.utils.io.atomic_write`: a temporary file in the same
    directory, flushed to disk, then renamed over ``json_file``), so a
    reader or a crash sees either the old file or the new one.

    Args:
        json_file (str): Path of the ``nc_metrics.json``.
        records (Sequence[dict]): The records, in order.
    """
    atomic_write(json_file,
                 ''.join(json.dumps(record) + '\n'
                         for record in records).encode('utf-8'))


def plotted_metrics(runs: Dict[str, List[dict]],
                    metrics: Optional[Sequence[str]] = None) -> List[str]:
    """The metrics of ``metrics`` that at least one run has, in order.

    Args:
        runs (dict[str, list[dict]]): Run label -> records.
        metrics (Sequence[str], optional): Wanted keys. Defaults to
            :data:`DEFAULT_METRICS`.

    Returns:
        list[str]: The keys a figure of these runs plots.

    Raises:
        ValueError: If no run has any of them.
    """
    wanted = DEFAULT_METRICS if metrics is None else metrics
    plotted = [
        key for key in wanted
        if any(key in record for records in runs.values()
               for record in records)
    ]
    if not plotted:
        raise ValueError(f'None of the metrics {list(wanted)} is in the '
                         f'records of runs {list(runs)}.')
    return plotted


def nc_curves_figure(runs: Dict[str, List[dict]],
                     metrics: Optional[Sequence[str]] = None,
                     x_key: str = 'epoch',
                     num_classes: Optional[int] = None):
    """A figure of neural-collapse metrics against training progress.

    One panel per metric, one line per run (so e.g. an ETF + DR run and its
    cross-entropy baseline can be compared at a glance), one legend for the
    whole figure, outside the panels.

    Args:
        runs (dict[str, list[dict]]): Run label -> records as returned by
            :func:`load_nc_records`.
        metrics (Sequence[str], optional): Keys to plot; those no run has
            are left out. Defaults to :data:`DEFAULT_METRICS`.
        x_key (str): Record key of the x axis, ``'epoch'`` or ``'iter'``.
            Defaults to ``'epoch'``.
        num_classes (int, optional): ``K``, to draw the simplex cosine
            ``-1/(K-1)`` on pairwise-cosine panels.

    Returns:
        matplotlib.figure.Figure: The figure, on an Agg canvas and outside
        pyplot (nothing to close).
    """
    # A bare Figure draws with the Agg canvas and leaves pyplot, and the
    # user's chosen backend, alone (the hook runs inside their process).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    plotted = plotted_metrics(runs, metrics)
    cols = min(4, len(plotted))
    rows = (len(plotted) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    markers = 'osD^vP*X'
    for ax, key in zip(axes.flat, plotted):
        for i, (label, records) in enumerate(runs.items()):
            points = [(r[x_key], r[key]) for r in records if key in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker=markers[i % len(markers)],
                        markersize=4, linewidth=1.5, alpha=0.85,
                        label=label)
        if key in LOG_SCALE_METRICS and all(
                r[key] > 0 for records in runs.values() for r in records
                if key in r):
            ax.set_yscale('log')
        if key in PAIRWISE_COS_METRICS and num_classes:
            ax.axhline(-1 / (num_classes - 1), color='0.3', linestyle='--',
                       linewidth=1, label='simplex, −1/(K−1)')
        title, ylabel = METRIC_LABELS.get(key, (key, key))
        ax.set_title(title, fontsize='medium')
        ax.set_ylabel(ylabel)
        ax.set_xlabel('epoch' if x_key == 'epoch' else 'iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(plotted):]:
        ax.axis('off')
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    fig.legend([handles[label] for label in labels], labels,
               loc='upper center', ncol=min(len(labels), 6),
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.3 * rows + 0.6)))
    return fig


def plot_nc_curves(runs: Dict[str, List[dict]],
                   out_file: str,
                   metrics: Optional[Sequence[str]] = None,
                   x_key: str = 'epoch',
                   num_classes: Optional[int] = None) -> List[str]:
    """Plot neural-collapse metrics into a PNG (see
    :func:`nc_curves_figure`).

    Args:
        runs (dict[str, list[dict]]): Run label -> records.
        out_file (str): Path of the PNG to write.
        metrics (Sequence[str], optional): Keys to plot.
        x_key (str): ``'epoch'`` or ``'iter'``. Defaults to ``'epoch'``.
        num_classes (int, optional): ``K`` for the simplex reference line.

    Returns:
        list[str]: The metrics actually plotted.
    """
    fig = nc_curves_figure(runs, metrics, x_key, num_classes)
    fig.savefig(out_file, dpi=100)
    return plotted_metrics(runs, metrics)
