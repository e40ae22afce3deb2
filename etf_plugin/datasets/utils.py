"""Reading the labels of a dataset without loading its samples, and the
training samples per class: what every count-aware component uses."""
import copy
from typing import Optional

import numpy as np
from mmengine.dataset import ClassBalancedDataset, RepeatDataset

from etf_plugin.functional.long_tail import class_sizes


def read_gt_labels(dataset) -> np.ndarray:
    """Class index of every sample of ``dataset``, read from annotations.

    Uses the first of ``get_gt_labels()`` (MMPretrain datasets and wrappers),
    ``get_cat_ids(i)`` (e.g. MMEngine's ``ClassBalancedDataset``) or
    ``get_data_info(i)['gt_label']`` (e.g. MMEngine's ``ConcatDataset`` and
    ``RepeatDataset``) that the dataset has. None of them runs the pipeline,
    so no image is loaded or decoded.

    Args:
        dataset: A single-label classification dataset.

    Returns:
        np.ndarray: Labels, int64, shape ``(len(dataset),)``.
    """
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels()).reshape(-1).astype(np.int64)
    if hasattr(dataset, 'get_cat_ids'):
        get_cat_ids = dataset.get_cat_ids
    elif hasattr(dataset, 'get_data_info'):
        def get_cat_ids(i):
            return np.asarray(dataset.get_data_info(i)['gt_label']).reshape(-1)
    else:
        raise TypeError(
            f'{type(dataset).__name__} has none of get_gt_labels(), '
            f'get_cat_ids(idx) and get_data_info(idx), so its labels cannot '
            f'be read without loading samples.')
    labels = np.empty(len(dataset), dtype=np.int64)
    for i in range(len(dataset)):
        cat_ids = get_cat_ids(i)
        if len(cat_ids) != 1:
            raise ValueError(
                f'Sample {i} has categories {list(cat_ids)}; a long-tail '
                f'subsample needs exactly one label per sample.')
        labels[i] = cat_ids[0]
    return labels


def training_class_counts(dataset, num_classes: Optional[int] = None) -> np.ndarray:
    """Samples per class of a training set, read from annotations only.

    ``metainfo['class_counts']`` when the dataset provides it
    (:class:`~etf_plugin.datasets.LongTailDataset` does, and MMEngine's
    wrappers pass metainfo through), else the labels counted with
    :func:`read_gt_labels`. MMEngine's ``ClassBalancedDataset`` and
    ``RepeatDataset`` repeat samples; the samples of the dataset they wrap
    are counted, since a repeated image is not a new one.

    Args:
        dataset: The training dataset.
        num_classes (int, optional): Number of classes of the model; the
            counts (one per class of ``metainfo['classes']`` when the dataset
            names its classes) must have exactly this many entries. Classes
            without a label count 0.

    Returns:
        np.ndarray: The counts, int64, shape ``(num_classes,)``.
    """
    while isinstance(dataset, (ClassBalancedDataset, RepeatDataset)):
        dataset = dataset.dataset
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    metainfo = getattr(dataset, 'metainfo', None) or {}
    counts = metainfo.get('class_counts')
    classes = metainfo.get('classes')
    if counts is None:
        labels = read_gt_labels(dataset)
        if classes is not None:
            length = len(classes)
        elif num_classes is not None:
            length = num_classes
        else:
            length = int(labels.max()) + 1 if len(labels) else 0
        counts = class_sizes(labels, length)
    counts = np.asarray(counts, dtype=np.int64)
    if num_classes is not None and len(counts) != num_classes:
        raise ValueError(
            f'The training set has {len(counts)} classes but the model has '
            f'{num_classes}: set the head\'s num_classes to the number of '
            f'classes of the training set.')
    return counts


def innermost_dataset_cfg(dataset_cfg: dict) -> dict:
    """The config of the dataset that owns the pipeline inside wrappers
    (``LongTailDataset``, ``ClassBalancedDataset``, ...), which hold it under
    ``'dataset'``. The returned dict is part of ``dataset_cfg``."""
    while 'pipeline' not in dataset_cfg and isinstance(
            dataset_cfg.get('dataset'), dict):
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def heldout_dataset_cfg(train_dataset_cfg: dict,
                        per_class: int,
                        pipeline: Optional[list] = None) -> dict:
    """The held-out split of a ``LongTailDataset`` training config: up to
    ``per_class`` images per class that the training subset does not keep
    (``LongTailDataset(split='heldout')``), for choosing knobs without the
    test split.

    Built from the training config as the run has it (after command-line
    overrides), so the two can never disagree on ratio, seed or profile.

    Args:
        train_dataset_cfg (dict): ``train_dataloader.dataset``; must be a
            ``LongTailDataset``.
        per_class (int): Held-out images per class.
        pipeline (list, optional): Pipeline to use instead of the training
            one (e.g. the test pipeline).

    Returns:
        dict: A new dataset config.
    """
    if train_dataset_cfg.get('type') != 'LongTailDataset':
        raise ValueError(
            f'A held-out split is carved out of a LongTailDataset training '
            f'set; this training set is {train_dataset_cfg.get("type")!r}. '
            f'Validate on a list of your own instead (e.g. ImageNet-LT\'s '
            f'ImageNet_LT_val.txt).')
    cfg = copy.deepcopy(dict(train_dataset_cfg))
    cfg.update(split='heldout', heldout_per_class=per_class, lazy_init=False)
    if pipeline is not None:
        innermost_dataset_cfg(cfg)['pipeline'] = copy.deepcopy(pipeline)
    return cfg
