"""Figures of the long-tail evaluation: accuracy under shifted test label
distributions, and per-class accuracy against training samples.

Figures are bare matplotlib ``Figure`` objects on an Agg canvas, outside
pyplot, so drawing them inside a run leaves the user's backend alone.
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np

MARKERS = 'osD^vP*X'


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def figure_to_rgb(figure) -> np.ndarray:
    """A matplotlib figure as an ``(H, W, 3)`` uint8 array (what
    ``Visualizer.add_image`` takes)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _ratio_label(ratio: float) -> str:
    if math.isclose(ratio, 1):
        return 'uniform'
    if ratio > 1:
        return f'fwd {ratio:g}'
    return f'bwd {1 / ratio:g}'


def label_shift_figure(curves: Dict[str, Dict[float, float]],
                       train_ratio: Optional[float] = None,
                       train_points: Optional[Dict[str, float]] = None,
                       title: Optional[str] = None):
    """Accuracy against the imbalance of the test label distribution.

    The x axis runs from the most forward-long-tailed test prior (the
    training set's head classes dominate) on the left, through uniform, to
    the most backward one (its tail classes dominate) on the right, on a log
    scale of the ratio.

    Args:
        curves (dict[str, dict[float, float]]): Curve label -> {test
            imbalance ratio (``> 1`` forward, ``< 1`` backward): accuracy}.
        train_ratio (float, optional): Largest over smallest training count:
            drawn as a vertical line, "the training distribution".
        train_points (dict[str, float], optional): Curve label -> accuracy
            under the training set's own class prior, drawn at
            ``train_ratio`` in the colour of the curve of that label.
        title (str, optional): Title of the axes.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    figure = _new_figure(6.4, 4.0)
    ax = figure.subplots()
    ratios = sorted({r for curve in curves.values() for r in curve},
                    reverse=True)
    colors = {}
    for i, (label, curve) in enumerate(curves.items()):
        xs = sorted(curve, reverse=True)
        line, = ax.plot([-math.log(x) for x in xs], [curve[x] for x in xs],
                        marker=MARKERS[i % len(MARKERS)], markersize=4,
                        label=label)
        colors[label] = line.get_color()
    if train_ratio is not None and np.isfinite(train_ratio):
        x = -math.log(train_ratio)
        ax.axvline(x, color='0.4', linestyle='--', linewidth=1,
                   label=f'training distribution ({train_ratio:g}:1)')
        for i, (label, value) in enumerate((train_points or {}).items()):
            ax.plot([x], [value], marker='*', markersize=11,
                    color=colors.get(label, '0.2'),
                    linestyle='none',
                    label='★ under the training prior' if i == 0 else None)
        ratios = sorted(set(ratios) | {train_ratio}, reverse=True)
    ticks = [r for r in ratios if r in {x for c in curves.values() for x in c}]
    ax.set_xticks([-math.log(r) for r in ticks])
    ax.set_xticklabels([_ratio_label(r) for r in ticks], rotation=45,
                       ha='right', fontsize='small')
    ax.set_xlabel('test label distribution (imbalance ratio)')
    ax.set_ylabel('top-1 accuracy (%)')
    if title:
        ax.set_title(title, fontsize='medium')
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
    figure.tight_layout()
    return figure


def accuracy_vs_count_figure(runs: Dict[str, dict],
                             shot_thresholds: Sequence[float] = (),
                             title: Optional[str] = None):
    """Per-class test accuracy against training samples per class, log x.

    Args:
        runs (dict[str, dict]): Run label -> ``dict(train_count=...,
            accuracy=...)``, arrays indexed by class (accuracy in percent;
            NaN for a class without test samples).
        shot_thresholds (Sequence[float]): Counts drawn as vertical lines
            (the many/few-shot thresholds).
        title (str, optional): Title of the axes.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    figure = _new_figure(6.4, 4.0)
    ax = figure.subplots()
    for i, (label, run) in enumerate(runs.items()):
        counts = np.asarray(run['train_count'], dtype=np.float64)
        accuracy = np.asarray(run['accuracy'], dtype=np.float64)
        keep = (counts > 0) & ~np.isnan(accuracy)
        order = np.argsort(counts[keep], kind='stable')
        ax.plot(counts[keep][order], accuracy[keep][order],
                marker=MARKERS[i % len(MARKERS)], markersize=5,
                linewidth=1, alpha=0.85, label=label)
    for threshold in shot_thresholds:
        ax.axvline(threshold, color='0.6', linestyle=':', linewidth=1)
    ax.set_xscale('log')
    ax.set_xlabel('training samples of the class (log scale)')
    ax.set_ylabel('test accuracy of the class (%)')
    ax.set_ylim(-3, 103)
    if title:
        ax.set_title(title, fontsize='medium')
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize='small')
    figure.tight_layout()
    return figure


def add_figure_to_visualizer(name: str, figure) -> bool:
    """Add ``figure`` as the image ``name`` to the run's visualizer (every
    vis backend: the PNG files of ``LocalVisBackend`` under the work dir,
    TensorBoard), at the current epoch.

    For metrics, which see no runner: the visualizer and the epoch are the
    current instances the runner made. Outside a run (no visualizer) it
    does nothing.

    Args:
        name (str): Image name.
        figure (matplotlib.figure.Figure): The figure.

    Returns:
        bool: Whether a visualizer took the figure.
    """
    from mmengine.logging import MessageHub
    from mmengine.visualization import Visualizer
    try:
        visualizer = Visualizer.get_current_instance()
    except RuntimeError:  # no visualizer was made: not inside a run
        return False
    # (MessageHub makes a default instance when the runner made none.)
    step = MessageHub.get_current_instance().get_info('epoch', 0)
    visualizer.add_image(name, figure_to_rgb(figure), step=step)
    return True
