from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class Digits(BaseDataset):
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 10
    classes) as an in-memory MMPretrain dataset: real data, no download.

    The split is fixed: a permutation drawn with seed 0 puts the first
    ``test_per_class`` images of every class in ``'test'`` (balanced) and the
    rest (124 to 133 per class) in ``'train'``. Wrap the train split in
    ``LongTailDataset`` for the long-tailed demo. Images are ``(8, 8, 1)``
    uint8 arrays (the 0..16 ink levels scaled to 0..255) under ``'img'``, like
    mmpretrain's CIFAR datasets, so pipelines need no ``LoadImageFromFile``.

    Args:
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        test_per_class (int): Test images per class. Defaults to 50.
        **kwargs: Passed to ``BaseDataset`` (``pipeline``, ``test_mode``,
            ``lazy_init``, ...).
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}

    def __init__(self, split: str = 'train', test_per_class: int = 50,
                 **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not 0 < test_per_class < 124:
            raise ValueError('test_per_class must be in [1, 123] (the '
                             f'smallest class has 174 images), got '
                             f'{test_per_class}.')
        self.split = split
        self.test_per_class = test_per_class
        kwargs.setdefault('test_mode', split == 'test')
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        order = np.random.default_rng(0).permutation(len(labels))
        rank_in_class = np.empty(len(labels), dtype=np.int64)
        for k in range(10):
            members = order[labels[order] == k]
            rank_in_class[members] = np.arange(len(members))
        in_test = rank_in_class < self.test_per_class
        keep = np.flatnonzero(in_test if self.split == 'test' else ~in_test)
        return [
            dict(img=images[i][..., None], gt_label=int(labels[i]))
            for i in keep
        ]
