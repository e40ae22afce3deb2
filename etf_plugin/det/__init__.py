"""MMDetection adapter, registered in mmdet's registries (scope ``mmdet``).

An MMDetection config opts in with ``custom_imports=dict(imports=
['etf_plugin.det'], allow_failed_imports=False)``; ``import etf_plugin``
alone does not import mmdet. A two-stage detector gets the fixed ETF RoI
classifier by swapping its bbox head's type to ``ETFBBoxHead``; see
docs/mmdet.md.
"""
from . import retired  # noqa: F401  (old names fail with their replacement)
from .etf_bbox_head import ETFBBoxHead
from .objectness_loss import ETFObjectnessLoss
from .objectness_predictor import ETFObjectnessPredictor
from .synthetic_shapes import SyntheticShapes

__all__ = [
    'ETFBBoxHead', 'ETFObjectnessLoss', 'ETFObjectnessPredictor',
    'SyntheticShapes'
]
