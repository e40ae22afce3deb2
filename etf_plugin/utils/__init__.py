from .dist import check_same_on_all_ranks
from .model import classifier_of, unwrap_model

__all__ = ['check_same_on_all_ranks', 'classifier_of', 'unwrap_model']
