from .dot_regression_loss import DotRegressionLoss

__all__ = ['DotRegressionLoss']
from .logit_adjusted_loss import LogitAdjustedLoss  # noqa: E402

__all__ += ['LogitAdjustedLoss']
