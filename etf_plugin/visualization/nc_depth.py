"""The figure of ``tools/analysis/nc_eval.py``: neural collapse against
depth, per split, and minority collapse per shot group."""
from typing import Dict, Optional

SHOT_GROUPS = ('many', 'medium', 'few')


def nc_depth_figure(results: Dict[str, Dict[str, dict]],
                    num_classes: Optional[int] = None):
    """NC1 and CDNV against depth, one line per split, and the shot-group
    read-outs of minority collapse at ``pre_logits``.

    Args:
        results (dict): ``{split: {stage: metrics}}`` as
            ``etf_plugin.engine.neural_collapse.evaluate_neural_collapse``
            returns it, stages in depth order.
        num_classes (int, optional): ``K``, to draw the simplex cosine
            ``-1/(K-1)``.

    Returns:
        matplotlib.figure.Figure: The figure, on an Agg canvas and outside
        pyplot (nothing to close).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 7.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    splits = list(results)
    stages = list(next(iter(results.values())))
    for ax, key, title, ylabel in [
        (axes[0, 0], 'nc1', 'NC1 against depth', 'tr(Σ_W Σ_B⁺) / K'),
        (axes[0, 1], 'cdnv', 'CDNV against depth',
         'mean (v_k + v_k′) / (2‖μ_k − μ_k′‖²)'),
    ]:
        for split in splits:
            values = [results[split][s].get(key) for s in stages]
            points = [(i, v) for i, v in enumerate(values) if v is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker='o', label=split)
        if all(results[sp][s].get(key, 1) > 0 for sp in splits
               for s in stages):
            ax.set_yscale('log')
        ax.set_xticks(range(len(stages)))
        ax.set_xticklabels(stages, rotation=20, fontsize='small')
        ax.set_title(title, fontsize='medium')
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    _group_bars(axes[1, 0], results, splits,
                [('mc_means_cos', 'class means')] +
                [('mc_w_cos', 'classifier rows')],
                'Minority collapse at pre_logits: mean pairwise cos within '
                'a group', 'mean cos')
    if num_classes:
        axes[1, 0].axhline(-1 / (num_classes - 1), color='0.3',
                           linestyle='--', linewidth=1,
                           label='simplex, −1/(K−1)')
        axes[1, 0].legend(fontsize='small')
    _group_bars(axes[1, 1], results, splits,
                [('mean_norm_ratio', 'class-mean norm'),
                 ('w_norm_ratio', 'classifier norm')],
                'Per-group norm / mean norm at pre_logits', 'ratio')
    axes[1, 1].axhline(1, color='0.3', linestyle='--', linewidth=1)
    fig.tight_layout()
    return fig


def _group_bars(ax, results, splits, keys, title, ylabel):
    """Bars per shot group: one per (split, key); the classifier keys,
    which do not depend on the split, once."""
    bars = []
    for prefix, what in keys:
        for split in (splits[:1] if prefix.startswith(('mc_w', 'w_'))
                      else splits):
            label = what if prefix.startswith(('mc_w', 'w_')) else \
                f'{what}, {split}'
            values = [results[split].get('pre_logits', {}).get(
                f'{prefix}_{g}') for g in SHOT_GROUPS]
            if any(v is not None for v in values):
                bars.append((label, values))
    width = 0.8 / max(1, len(bars))
    for i, (label, values) in enumerate(bars):
        xs = [g + (i - (len(bars) - 1) / 2) * width
              for g, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=label)
    ax.set_xticks(range(len(SHOT_GROUPS)))
    ax.set_xticklabels(SHOT_GROUPS)
    ax.set_title(title, fontsize='medium')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis='y')
    if bars:
        ax.legend(fontsize='small')
