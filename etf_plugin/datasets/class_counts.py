"""Training samples per class, from exactly one of three config sources.

The ``LongTailAccuracy`` metric, the ``LogitAdjustedLoss`` and the
``PostHocLogitAdjustedHead`` all need the training counts, and none of them
can read them from the data they are given (the metric sees the test set, a
loss sees one batch). Each takes exactly one of:

- ``class_counts=[...]``: the counts, entry ``k`` for class ``k``;
- ``counts_file=PATH``: a text file with one integer per line;
- ``train_dataset=dict(...)``: the training dataset config (or the dataset
  itself), built once; its labels are read with ``get_gt_labels`` /
  ``get_cat_ids`` (see :func:`~etf_plugin.datasets.read_gt_labels`), so no
  image is decoded.
"""
from typing import Optional, Sequence, Union

import numpy as np
from mmpretrain.registry import DATASETS

from etf_plugin.datasets.long_tail import read_gt_labels
from etf_plugin.functional.long_tail import class_sizes

SOURCES = ('class_counts', 'counts_file', 'train_dataset')


def check_counts_source(class_counts: Optional[Sequence[int]] = None,
                        counts_file: Optional[str] = None,
                        train_dataset: Union[dict, object, None] = None,
                        owner: str = 'This component') -> str:
    """Raise a ``ValueError`` unless exactly one counts source is given.

    Args:
        class_counts (Sequence[int], optional): The counts.
        counts_file (str, optional): Path of a counts file.
        train_dataset (dict | Dataset, optional): The training dataset or its
            config.
        owner (str): Name shown in the error message. Defaults to
            ``'This component'``.

    Returns:
        str: The name of the given source, one of :data:`SOURCES`.
    """
    given = [
        name for name, value in zip(SOURCES, (class_counts, counts_file,
                                              train_dataset))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(
            f'{owner} needs the training samples per class from exactly one '
            f'of class_counts=[...], counts_file=PATH or '
            f'train_dataset=dict(...); got {given or "none"}.')
    if isinstance(class_counts, str):
        raise ValueError(f'class_counts must be a list of integers, got the '
                         f'string {class_counts!r}; for a file use '
                         f'counts_file=PATH.')
    return given[0]


def read_counts_file(path: str) -> np.ndarray:
    """Read per-class training counts from a text file, one integer per line
    (line ``i`` is class ``i``; blank lines are ignored).

    Args:
        path (str): The counts file.

    Returns:
        np.ndarray: The counts, int64.
    """
    with open(path) as f:
        lines = [line.strip() for line in f]
    try:
        return np.asarray([int(line) for line in lines if line],
                          dtype=np.int64)
    except ValueError as error:
        raise ValueError(
            f'{path} must hold one integer count per line (line i = class '
            f'i): {error}') from error


def count_dataset_labels(train_dataset: Union[dict, object]) -> np.ndarray:
    """Training samples per class of a dataset or dataset config.

    The number of classes is the length of ``metainfo['classes']`` when the
    dataset has one (so classes without samples count 0), else the largest
    label + 1.

    Args:
        train_dataset (dict | Dataset): The dataset, or its config (built in
            MMPretrain's ``DATASETS``).

    Returns:
        np.ndarray: The counts, int64.
    """
    dataset = DATASETS.build(train_dataset) if isinstance(
        train_dataset, dict) else train_dataset
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    labels = read_gt_labels(dataset)
    classes = getattr(dataset, 'metainfo', {}).get('classes')
    num_classes = len(classes) if classes is not None else int(
        labels.max()) + 1
    return class_sizes(labels, num_classes)


def load_class_counts(class_counts: Optional[Sequence[int]] = None,
                      counts_file: Optional[str] = None,
                      train_dataset: Union[dict, object, None] = None,
                      owner: str = 'This component') -> np.ndarray:
    """Training samples per class from exactly one of three sources.

    Args:
        class_counts (Sequence[int], optional): The counts, entry ``k`` for
            class ``k``.
        counts_file (str, optional): A text file with one integer per line.
        train_dataset (dict | Dataset, optional): The training dataset or its
            config; its labels are counted without loading any sample.
        owner (str): Name shown in error messages. Defaults to
            ``'This component'``.

    Returns:
        np.ndarray: The counts, int64, shape ``(K,)``, ``K >= 1``, all
        non-negative.
    """
    source = check_counts_source(class_counts, counts_file, train_dataset,
                                 owner)
    if source == 'counts_file':
        counts = read_counts_file(counts_file)
    elif source == 'train_dataset':
        counts = count_dataset_labels(train_dataset)
    else:
        counts = np.asarray(class_counts)
    if counts.ndim != 1 or len(counts) == 0 or not np.issubdtype(
            counts.dtype, np.number):
        raise ValueError(f'{owner}: the class counts ({source}) must be a '
                         f'non-empty list of integers, got {counts!r}.')
    if (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError(f'{owner}: the class counts must be non-negative '
                         f'integers, got {counts.tolist()}.')
    return counts.astype(np.int64)


class LazyClassCounts:
    """Training samples per class from exactly one source, read when first
    needed.

    The choice of source is checked at construction. ``class_counts`` and
    ``counts_file`` are also read and checked then; a ``train_dataset`` is
    built on the first call instead, so that building a model (on every rank,
    or in a test without the data set) reads no data.

    Args:
        class_counts (Sequence[int], optional): The counts.
        counts_file (str, optional): A text file with one integer per line.
        train_dataset (dict | Dataset, optional): The training dataset or its
            config.
        owner (str): Name shown in error messages.
    """

    def __init__(self,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 train_dataset: Union[dict, object, None] = None,
                 owner: str = 'This component') -> None:
        self.source = check_counts_source(class_counts, counts_file,
                                          train_dataset, owner)
        self.owner = owner
        self._train_dataset = train_dataset
        self._counts = None
        if self.source != 'train_dataset':
            self._counts = load_class_counts(
                class_counts, counts_file, owner=owner)

    @property
    def is_loaded(self) -> bool:
        """Whether the counts have been read."""
        return self._counts is not None

    def __call__(self) -> np.ndarray:
        """The counts (int64, ``(K,)``), read on the first call."""
        if self._counts is None:
            self._counts = load_class_counts(
                train_dataset=self._train_dataset, owner=self.owner)
            self._train_dataset = None  # built once; free the dataset
        return self._counts.copy()
