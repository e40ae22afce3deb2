"""``LongTailDataset``: a seeded long-tailed subsample of a classification
dataset (CIFAR-10/100-LT and the like)."""
import copy
import logging
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import force_full_init
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from etf_plugin.datasets.utils import read_gt_labels
from etf_plugin.functional.long_tail import (LONG_TAIL_PROFILES,
                                             check_class_counts,
                                             check_class_order,
                                             check_imbalance_ratio,
                                             class_sizes, long_tail_counts,
                                             long_tail_indices,
                                             seeded_class_order)


@DATASETS.register_module()
class LongTailDataset:
    """A long-tailed subsample of a single-label dataset.

    Class ``c`` keeps ``n_c`` of its samples, chosen uniformly at random with
    a private seeded generator. The targets ``n_c`` come from a profile
    (see :func:`etf_plugin.functional.long_tail.long_tail_counts`):

    - ``profile='exp'``: ``n_i = int(n_max * imbalance_ratio ** (i/(K-1)))``,
      the CIFAR-LT convention of Cao et al. and Cui et al. (2019):
      CIFAR-100 at 0.01 gives 500 ... 5 per class, 10,847 images;
      CIFAR-10 at 0.01 gives 12,406.
    - ``profile='step'``: the first ``K // 2`` ranks keep ``n_max``, the rest
      ``int(n_max * imbalance_ratio)``.
    - ``counts=[...]``: explicit targets per rank (``profile`` left None or
      set to ``'counts'``).

    By default rank ``i`` is class ``i``; ``class_order[i]`` names the class
    that takes rank ``i`` instead, e.g. a random permutation so that the
    head is not the first classes. ``class_order_seed=s`` draws that
    permutation from ``s`` (:func:`~etf_plugin.functional.long_tail.
    seeded_class_order`), so runs with different seeds put different classes
    in the tail. The order in use, given or drawn, is in
    ``metainfo['class_order']``; without either option rank ``i`` stays
    class ``i`` and the metainfo has no ``class_order``.

    ``n_max`` is the count of the rank-0 class: an int, ``'largest'`` (the
    default: the size of the largest class in the wrapped dataset) or
    ``'smallest'`` (the size of its smallest class). A class that has fewer
    samples than its target keeps all of them, so with ``'largest'`` on an
    unevenly sized dataset the realised profile is the target clipped to
    what exists; ``'smallest'`` guarantees that every target is reached
    exactly. The realised counts are always in ``metainfo['class_counts']``.

    The subset is a pure function of (labels, profile, seed): every
    distributed rank builds the same one without communication, whatever the
    global RNG state. Labels come from ``get_gt_labels()`` /
    ``get_cat_ids()``, never from loading images. The inner dataset is kept
    whole and indexed through the sorted list of kept indices, like
    MMEngine's ``ClassBalancedDataset``.

    ``split='heldout'`` gives, instead of the long-tailed subset, up to
    ``heldout_per_class`` samples of every class drawn (with the same seed)
    from the samples the subset does *not* keep: a validation set carved out
    of the training split, disjoint from the training subset, on which knobs
    (a temperature, τ, a loss weight) can be chosen without touching the
    test split. Build it with the same options as the training subset plus
    ``split='heldout'``; a class whose every sample is in the training subset
    has no held-out sample.

    Example config::

        train_dataloader = dict(
            dataset=dict(
                type='LongTailDataset',
                dataset=dict(type='CIFAR100', data_root='data/cifar100',
                             split='train', pipeline=train_pipeline),
                imbalance_ratio=0.01, profile='exp', seed=0))

    Args:
        dataset (BaseDataset | dict): The dataset to subsample, or its config.
        imbalance_ratio (float): ``n_min / n_max`` of the profile, in
            ``(0, 1]`` (0.01 is "imbalance ratio 100"). Defaults to 0.01.
            Ignored with explicit ``counts``.
        profile (str, optional): ``'exp'``, ``'step'`` or ``'counts'``.
            Defaults to None: ``'counts'`` if ``counts`` is given, else
            ``'exp'``.
        counts (Sequence[int], optional): Target count per rank; at most one
            per class. Missing trailing entries mean 0. Defaults to None.
        class_order (Sequence[int], optional): Permutation of the class
            indices; ``class_order[i]`` takes rank ``i``. Defaults to None.
        class_order_seed (int, optional): Seed of a random ``class_order``;
            not with ``class_order``. Defaults to None (rank ``i`` is class
            ``i``).
        n_max (int | str): Count of the rank-0 class, or ``'largest'`` /
            ``'smallest'`` (see above). Defaults to ``'largest'``.
        seed (int): Seed of the subsample. Defaults to 0.
        allow_empty (bool): Allow classes to end with no sample. If False, such
            classes raise a ``ValueError`` naming them. Defaults to False.
        lazy_init (bool): Defer reading labels and choosing the subset until
            :meth:`full_init` (or the first access). Defaults to False.
        split (str): ``'train'`` (the long-tailed subset) or ``'heldout'``
            (see above). Defaults to ``'train'``.
        heldout_per_class (int, optional): Held-out samples per class; needed
            by ``split='heldout'``.
    """

    def __init__(self,
                 dataset: Union[object, dict],
                 imbalance_ratio: float = 0.01,
                 profile: Optional[str] = None,
                 counts: Optional[Sequence[int]] = None,
                 class_order: Optional[Sequence[int]] = None,
                 class_order_seed: Optional[int] = None,
                 n_max: Union[int, str] = 'largest',
                 seed: int = 0,
                 allow_empty: bool = False,
                 lazy_init: bool = False,
                 split: str = 'train',
                 heldout_per_class: Optional[int] = None):
        if split not in ('train', 'heldout'):
            raise ValueError(f"split must be 'train' or 'heldout', got "
                             f"{split!r}.")
        if (split == 'heldout') != (heldout_per_class is not None):
            raise ValueError("heldout_per_class=N goes with split='heldout' "
                             "and only with it.")
        if split == 'heldout' and not _is_int(heldout_per_class, minimum=1):
            raise ValueError(f'heldout_per_class must be a positive integer, '
                             f'got {heldout_per_class!r}.')
        if isinstance(dataset, dict):
            self.dataset = DATASETS.build(dataset)
        else:
            self.dataset = dataset
        if profile is None:
            profile = 'exp' if counts is None else 'counts'
        if profile == 'counts' and counts is None:
            raise ValueError("profile='counts' needs counts=[...].")
        if counts is not None and profile != 'counts':
            raise ValueError(
                f'Got both profile={profile!r} and explicit counts; pass '
                f'only one of them.')
        if profile not in LONG_TAIL_PROFILES + ('counts', ):
            raise ValueError(f"Unknown long-tail profile {profile!r}; choose "
                             f"one of {LONG_TAIL_PROFILES} or 'counts'.")
        if profile != 'counts':
            if isinstance(imbalance_ratio, bool) or not isinstance(
                    imbalance_ratio, (int, float)):
                raise TypeError(
                    f'imbalance_ratio must be a number, got '
                    f'{imbalance_ratio!r} ({type(imbalance_ratio).__name__});'
                    f' write imbalance_ratio=0.01, not \'0.01\'.')
            check_imbalance_ratio(imbalance_ratio)
        if not (n_max in ('largest', 'smallest') or _is_int(n_max, 1)):
            raise ValueError(f"n_max must be a positive integer, 'largest' or "
                             f"'smallest', got {n_max!r}.")
        if class_order_seed is not None:
            if class_order is not None:
                raise ValueError(
                    'Got both class_order and class_order_seed; pass only '
                    'one of them.')
            if not _is_int(class_order_seed, minimum=0):
                raise ValueError(f'class_order_seed must be an integer >= 0, '
                                 f'got {class_order_seed!r}.')
        if counts is not None:
            counts = check_class_counts(counts, owner='LongTailDataset')
        self.imbalance_ratio = imbalance_ratio
        self.profile = profile
        self.split = split
        self.heldout_per_class = heldout_per_class
        self.counts = None if counts is None else [int(c) for c in counts]
        self.class_order = None if class_order is None else list(class_order)
        self.class_order_seed = class_order_seed
        self.n_max = n_max
        self.seed = seed
        self.allow_empty = allow_empty
        self._metainfo = copy.deepcopy(getattr(self.dataset, 'metainfo', {}))

        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """Meta information of the wrapped dataset plus, once initialised,
        ``class_counts`` (samples kept per class, a list indexed by class)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Read the labels and choose the subset (idempotent)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        labels = read_gt_labels(self.dataset)
        if len(labels) == 0:
            raise ValueError('LongTailDataset got an empty dataset to wrap.')
        classes = self._metainfo.get('classes')
        num_classes = len(classes) if classes is not None else int(
            labels.max()) + 1
        available = class_sizes(labels, num_classes)
        if self.class_order_seed is not None:
            self.class_order = seeded_class_order(
                num_classes, self.class_order_seed).tolist()
        if self.class_order is not None:
            self._metainfo['class_order'] = check_class_order(
                self.class_order, num_classes).tolist()
        targets = self._target_counts(available)
        self._check_empty(np.minimum(targets, available), available)

        self._ori_indices = long_tail_indices(labels, targets, self.seed)
        if self.split == 'heldout':
            left_out = np.setdiff1d(
                np.arange(len(labels)), self._ori_indices, assume_unique=True)
            chosen = long_tail_indices(
                labels[left_out],
                np.full(num_classes, self.heldout_per_class), self.seed)
            self._ori_indices = left_out[chosen]
        self._labels = labels[self._ori_indices]
        kept = class_sizes(self._labels, num_classes)
        self._metainfo['class_counts'] = kept.tolist()
        clipped = np.flatnonzero(targets > available)
        if len(clipped) and self.split == 'train':
            print_log(
                f'LongTailDataset: {len(clipped)} classes have fewer samples '
                f'than their target and keep all of them (first: class '
                f'{clipped[0]}, {available[clipped[0]]} < '
                f'{targets[clipped[0]]}). Use n_max="smallest" to reach '
                f'every target exactly.',
                logger='current',
                level=logging.WARNING)
        self._fully_initialized = True

    def _target_counts(self, available: np.ndarray) -> np.ndarray:
        """Target count of every class from the profile options."""
        num_classes = len(available)
        if self.profile == 'counts':
            if len(self.counts) > num_classes:
                raise ValueError(
                    f'counts has {len(self.counts)} entries but the dataset '
                    f'has {num_classes} classes.')
            by_rank = np.zeros(num_classes, dtype=np.int64)
            by_rank[:len(self.counts)] = self.counts
            order = check_class_order(self.class_order, num_classes)
            targets = np.empty(num_classes, dtype=np.int64)
            targets[order] = by_rank
            return targets
        if self.n_max == 'largest':
            n_max = int(available.max())
        elif self.n_max == 'smallest':
            n_max = int(available.min())
        else:
            n_max = int(self.n_max)
        if n_max < 1:
            raise ValueError(
                f'n_max="{self.n_max}" resolved to {n_max}: the wrapped '
                f'dataset has an empty class. Pass an explicit n_max or '
                f'n_max="largest".')
        return long_tail_counts(num_classes, n_max, self.imbalance_ratio,
                                self.profile, self.class_order)

    def _check_empty(self, kept: np.ndarray, available: np.ndarray) -> None:
        """Raise if a class would end with no sample, unless allowed."""
        empty = np.flatnonzero(kept == 0)
        if len(empty) == 0 or self.allow_empty:
            return
        names = self._metainfo.get('classes')
        shown = [
            f'{c} ({names[c]})' if names is not None else str(c)
            for c in empty[:10]
        ]
        more = f' and {len(empty) - 10} more' if len(empty) > 10 else ''
        reason = ('the wrapped dataset has none of them'
                  if (available[empty] == 0).all() else
                  'their target count is 0 (n_max * imbalance_ratio < 1 or '
                  'a zero in counts)')
        raise ValueError(
            f'LongTailDataset would leave classes {", ".join(shown)}{more} '
            f'with 0 samples: {reason}. Raise imbalance_ratio or n_max, or '
            f'pass allow_empty=True.')

    @property
    def pipeline(self):
        """The wrapped dataset's pipeline (tools such as MMPretrain's
        ``browse_dataset.py`` read and replace it)."""
        return self.dataset.pipeline

    @pipeline.setter
    def pipeline(self, pipeline) -> None:
        self.dataset.pipeline = pipeline

    @force_full_init
    def _get_ori_dataset_idx(self, idx: int) -> int:
        """Index in the wrapped dataset of sample ``idx`` of the subset."""
        return int(self._ori_indices[idx])

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """Annotation of sample ``idx`` (no image is loaded)."""
        return self.dataset.get_data_info(self._get_ori_dataset_idx(idx))

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Category of sample ``idx`` as a one-element list."""
        return [int(self._labels[idx])]

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of all kept samples, int64, shape ``(len(self),)``."""
        return self._labels.copy()

    @force_full_init
    def __len__(self) -> int:
        return len(self._ori_indices)

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            print_log(
                'Please call `full_init()` before indexing a '
                'LongTailDataset built with lazy_init=True; calling it now.',
                logger='current')
            self.full_init()
        return self.dataset[self._get_ori_dataset_idx(idx)]

    @property
    def CLASSES(self) -> Optional[List[str]]:
        """Class names of the wrapped dataset."""
        return self._metainfo.get('classes', None)

    @property
    def class_to_idx(self) -> dict:
        """Map from class name to class index."""
        return {name: i for i, name in enumerate(self.CLASSES or [])}

    def __repr__(self) -> str:
        lines = [
            f'Dataset {self.__class__.__name__}',
            f'    Profile: \t{self.profile}'
            + ('' if self.profile == 'counts' else
               f' (imbalance_ratio={self.imbalance_ratio}, '
               f'n_max={self.n_max})'),
            f'    Seed: \t{self.seed}',
            f'    Split: \t{self.split}' + (
                f' ({self.heldout_per_class} per class)'
                if self.split == 'heldout' else ''),
        ]
        if self._fully_initialized:
            counts = self._metainfo['class_counts']
            lines.append(f'    Number of samples: \t{len(self)}')
            lines.append(f'    Per-class counts: \t{max(counts)} (max) ... '
                         f'{min(counts)} (min)')
        else:
            lines.append("    Haven't been initialized")
        lines.append(
            f'    Wrapped dataset: \t{self.dataset.__class__.__name__}')
        return '\n'.join(lines)


def _is_int(value, minimum: int) -> bool:
    """Whether ``value`` is an integer (not a bool, not 2.7) >= ``minimum``."""
    return (isinstance(value, (int, np.integer)) and not isinstance(
        value, bool) and value >= minimum)
