from .dot_regression_loss import DotRegressionLoss

__all__ = ['DotRegressionLoss']
