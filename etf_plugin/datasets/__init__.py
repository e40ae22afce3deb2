from .digits import Digits
from .long_tail import LongTailDataset, read_gt_labels
from .samplers import (ClassBalancedSampler, ClassPowerSampler,
                       SquareRootSampler)

__all__ = [
    'Digits', 'LongTailDataset', 'read_gt_labels', 'ClassBalancedSampler',
    'ClassPowerSampler', 'SquareRootSampler'
]
