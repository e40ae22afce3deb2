from .digits import Digits
from .long_tail import LongTailDataset
from .samplers import (ClassBalancedSampler, ClassPowerSampler,
                       SquareRootSampler, SubsetSampler)
from .utils import (heldout_dataset_cfg, innermost_dataset_cfg,
                    read_gt_labels, training_class_counts)

__all__ = [
    'Digits', 'LongTailDataset', 'read_gt_labels', 'training_class_counts',
    'ClassBalancedSampler', 'ClassPowerSampler', 'SquareRootSampler',
    'SubsetSampler', 'heldout_dataset_cfg', 'innermost_dataset_cfg'
]
