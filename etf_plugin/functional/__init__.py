"""Plain tensor functions: the single source of truth for the maths shared by
heads, losses, hooks, the MMDetection adapter and the analysis tools."""
from .dot_regression import (class_balanced_weights, dot_regression_loss,
                             target_distribution)
from .etf import (check_etf_shape, check_loaded_etf, etf_gram_error,
                  simplex_etf)
from .logit_adjustment import adjust_logits, log_prior
from .long_tail import long_tail_counts, long_tail_indices, shot_groups
from .neural_collapse import NCAccumulator, neural_collapse_metrics
from .tau_normalization import tau_normalize
from .ufm import (minority_collapse_threshold, solve_ufm_convex, train_ufm,
                  ufm_collapse_metrics)

__all__ = [
    'simplex_etf', 'check_etf_shape', 'check_loaded_etf', 'etf_gram_error',
    'dot_regression_loss', 'class_balanced_weights', 'target_distribution',
    'log_prior', 'adjust_logits', 'tau_normalize', 'long_tail_counts',
    'long_tail_indices', 'shot_groups', 'NCAccumulator',
    'neural_collapse_metrics', 'minority_collapse_threshold', 'train_ufm',
    'solve_ufm_convex', 'ufm_collapse_metrics'
]
