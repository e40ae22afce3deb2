from .dist import check_same_on_all_ranks

__all__ = ['check_same_on_all_ranks']
