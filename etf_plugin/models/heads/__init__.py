from .cosine_cls_head import CosineClsHead
from .etf_head import ETFHead
from .post_hoc_logit_adjusted_head import (PostHocLogitAdjustedCosineClsHead,
                                           PostHocLogitAdjustedETFHead,
                                           PostHocLogitAdjustedHead,
                                           PostHocLogitAdjustment)
from .tau_normalized_head import TauNormalizedHead

__all__ = [
    'CosineClsHead', 'ETFHead', 'PostHocLogitAdjustedHead',
    'PostHocLogitAdjustedETFHead', 'PostHocLogitAdjustedCosineClsHead',
    'PostHocLogitAdjustment', 'TauNormalizedHead'
]
