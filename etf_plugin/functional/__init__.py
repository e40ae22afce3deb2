"""Plain tensor functions: the single source of truth for the maths shared by
heads, losses, hooks, the MMDetection adapter and the analysis tools."""
from .dot_regression import (class_balanced_weights, dot_regression_loss,
                             target_distribution)
from .etf import check_etf_shape, etf_gram_error, simplex_etf
from .long_tail import long_tail_counts, long_tail_indices, shot_groups
from .neural_collapse import NCAccumulator, neural_collapse_metrics

__all__ = [
    'simplex_etf', 'check_etf_shape', 'etf_gram_error', 'dot_regression_loss',
    'class_balanced_weights', 'target_distribution', 'long_tail_counts',
    'long_tail_indices', 'shot_groups', 'NCAccumulator',
    'neural_collapse_metrics'
]
