from .label_shift_accuracy import LabelShiftAccuracy
from .long_tail_accuracy import LongTailAccuracy
from .long_tail_calibration import LongTailCalibration
from .per_class_report import PerClassReport

__all__ = [
    'LongTailAccuracy', 'LongTailCalibration', 'LabelShiftAccuracy',
    'PerClassReport'
]
