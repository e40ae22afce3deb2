from .etf_head import ETFHead

__all__ = ['ETFHead']
from .post_hoc_logit_adjusted_head import PostHocLogitAdjustedHead  # noqa: E402

__all__ += ['PostHocLogitAdjustedHead']
