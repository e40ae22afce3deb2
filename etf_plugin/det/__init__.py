"""MMDetection adapter, registered in mmdet's registries (scope ``mmdet``).

Imported by ``etf_plugin`` only when mmdet is importable. A bbox head uses
the fixed ETF classifier with
``cls_predictor_cfg=dict(type='ETFObjectnessPredictor')`` and
``loss_cls=dict(type='ETFObjectnessLoss')`` (the ETF over the object
classes plus a learnable objectness score), or the background-as-a-vertex
variant ``ETFPredictor`` + ``DotRegressionLoss``; see docs/mmdet.md.
"""
from .check_hook import RoIClassifierCheckHook
from .dot_regression_loss import DetDotRegressionLoss
from .etf_predictor import ETFObjectnessPredictor, ETFPredictor
from .objectness_loss import ETFObjectnessLoss
from .synthetic_shapes import SyntheticShapes

__all__ = [
    'DetDotRegressionLoss', 'ETFObjectnessLoss', 'ETFObjectnessPredictor',
    'ETFPredictor', 'RoIClassifierCheckHook', 'SyntheticShapes'
]
