from .digits import Digits
from .long_tail import LongTailDataset, read_gt_labels
from .samplers import (ClassBalancedSampler, ClassPowerSampler,
                       SquareRootSampler)

__all__ = [
    'Digits', 'LongTailDataset', 'read_gt_labels', 'ClassBalancedSampler',
    'ClassPowerSampler', 'SquareRootSampler'
]
from .class_counts import LazyClassCounts, load_class_counts  # noqa: E402

__all__ += ['load_class_counts', 'LazyClassCounts']
