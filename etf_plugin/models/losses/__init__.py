from .class_balanced_cross_entropy_loss import ClassBalancedCrossEntropyLoss
from .dot_regression_loss import DotRegressionLoss
from .logit_adjusted_loss import LogitAdjustedLoss
from .prototype_contrast_loss import PrototypeContrastLoss

__all__ = [
    'ClassBalancedCrossEntropyLoss', 'DotRegressionLoss', 'LogitAdjustedLoss',
    'PrototypeContrastLoss'
]
