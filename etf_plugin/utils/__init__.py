from .dist import check_same_on_all_ranks
from .io import atomic_write
from .model import classifier_of, num_classes_of, unwrap_model

__all__ = [
    'atomic_write', 'check_same_on_all_ranks', 'classifier_of',
    'num_classes_of', 'unwrap_model'
]
