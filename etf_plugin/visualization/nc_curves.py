"""Neural-collapse curves: read ``nc_metrics.json`` files and plot them.

Shared by :class:`~etf_plugin.engine.hooks.NeuralCollapseHook` (one run) and
``tools/analysis/plot_nc.py`` (several runs overlaid).
"""
import json
from typing import Dict, List, Optional, Sequence

# What a reader looks at first: collapse (NC1), simplex geometry (NC2),
# alignment with the classifier (NC3), NCC agreement (NC4), minority collapse.
DEFAULT_METRICS = ('nc1', 'nc2_equinorm', 'nc2_equiangle', 'nc2_etf_dist',
                   'nc3', 'nc4', 'wm_cos', 'mc_means_cos_few')
# Metrics that fall over orders of magnitude during training.
LOG_SCALE_METRICS = ('nc1', )


def load_nc_records(json_file: str) -> List[dict]:
    """Read the measurements a ``NeuralCollapseHook`` appended to a file.

    The file holds one JSON object per line. A run resumed from an earlier
    checkpoint may measure an iteration twice; the later record wins.

    Args:
        json_file (str): Path of an ``nc_metrics.json``.

    Returns:
        list[dict]: The records, sorted by training iteration.
    """
    by_iter = {}
    with open(json_file) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                by_iter[record['iter']] = record
    return [by_iter[key] for key in sorted(by_iter)]


def plot_nc_curves(runs: Dict[str, List[dict]],
                   out_file: str,
                   metrics: Optional[Sequence[str]] = None,
                   x_key: str = 'epoch') -> List[str]:
    """Plot neural-collapse metrics against training progress into a PNG.

    One panel per metric, one line per run, so e.g. an ETF + DR run and its
    cross-entropy baseline can be compared at a glance.

    Args:
        runs (dict[str, list[dict]]): Run label -> records as returned by
            :func:`load_nc_records`.
        out_file (str): Path of the PNG to write.
        metrics (Sequence[str], optional): Keys to plot; those no run has
            are left out. Defaults to :data:`DEFAULT_METRICS`.
        x_key (str): Record key of the x axis, ``'epoch'`` or ``'iter'``.
            Defaults to ``'epoch'``.

    Returns:
        list[str]: The metrics actually plotted.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only; never needs a display
    import matplotlib.pyplot as plt

    wanted = DEFAULT_METRICS if metrics is None else metrics
    plotted = [
        key for key in wanted
        if any(key in record for records in runs.values()
               for record in records)
    ]
    if not plotted:
        raise ValueError(f'None of the metrics {list(wanted)} is in the '
                         f'records of runs {list(runs)}.')
    cols = min(4, len(plotted))
    rows = (len(plotted) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, plotted):
        for label, records in runs.items():
            points = [(r[x_key], r[key]) for r in records if key in r]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker='o', markersize=3, label=label)
        if key in LOG_SCALE_METRICS and all(
                r[key] > 0 for records in runs.values() for r in records
                if key in r):
            ax.set_yscale('log')
        ax.set_title(key)
        ax.set_xlabel(x_key)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(plotted):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return plotted
