"""MMDetection adapter, registered in mmdet's registries (scope ``mmdet``).

Imported by ``etf_plugin`` only when mmdet is importable. A bbox head uses
the fixed ETF classifier with
``cls_predictor_cfg=dict(type='ETFPredictor')`` and
``loss_cls=dict(type='DotRegressionLoss')``; see docs/mmdet.md.
"""
from .dot_regression_loss import DetDotRegressionLoss
from .etf_predictor import ETFPredictor
from .synthetic_shapes import SyntheticShapes

__all__ = ['DetDotRegressionLoss', 'ETFPredictor', 'SyntheticShapes']
