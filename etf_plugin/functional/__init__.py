"""Plain tensor functions: the single source of truth for the maths shared by
heads, losses, hooks, the MMDetection adapter and the analysis code.

Rule: these modules depend on torch and numpy only (no mmengine, no
registry, no Runner, no process group), so they can be used and tested on
their own; distributed reductions live in the hooks that call them.
"""
from .calibration import (calibration_bin_sums, calibration_errors,
                          true_class_nll)
from .dot_regression import (check_labels, class_balanced_weights,
                             dot_regression_loss, dot_regression_sum,
                             hard_label_counts, target_distribution)
from .etf import (check_etf_shape, etf_gram_error, safe_normalize,
                  simplex_etf)
from .label_shift import (DEFAULT_SHIFT_RATIOS, long_tail_test_prior,
                          shift_name, shifted_accuracy)
from .logit_adjustment import adjust_logits, log_prior
from .long_tail import (check_class_counts, long_tail_counts,
                        long_tail_indices, seeded_class_order,
                        shot_groups)
from .neural_collapse import NCAccumulator, neural_collapse_metrics
from .normalized_dots import normalized_dots
from .per_class import per_class_statistics
from .prototype_contrast import prototype_contrast_loss
from .tau_normalization import tau_normalize

__all__ = [
    'simplex_etf', 'check_etf_shape', 'etf_gram_error', 'safe_normalize',
    'dot_regression_loss', 'dot_regression_sum', 'normalized_dots',
    'class_balanced_weights', 'hard_label_counts',
    'target_distribution', 'check_labels', 'check_class_counts',
    'log_prior', 'adjust_logits', 'tau_normalize', 'long_tail_counts',
    'long_tail_indices', 'seeded_class_order', 'shot_groups', 'NCAccumulator',
    'neural_collapse_metrics', 'calibration_bin_sums', 'calibration_errors',
    'true_class_nll', 'DEFAULT_SHIFT_RATIOS', 'long_tail_test_prior',
    'shift_name', 'shifted_accuracy', 'per_class_statistics',
    'prototype_contrast_loss'
]
