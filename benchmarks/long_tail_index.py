"""Cost of the long-tail subset index against its floor, over ImageNet-sized
labels.

1,281,167 labels over 1,000 classes shaped like ImageNet-1k's training set
(most classes 1,300 images, a few down to 732), exponential profile with
imbalance ratio 0.01 and ``n_max`` = the largest class (the default of
``LongTailDataset``).

The floor is a plain NumPy reference of the same work: one seeded
permutation, a stable argsort of the permuted labels, the first ``n_c`` of
every class, a sort of the kept indices. Its subset is checked equal to
``long_tail_indices``' before timing. Rows:

- ``long_tail_indices`` and the whole ``LongTailDataset.full_init`` over a
  label-only dataset (labels read, class sizes, targets, index, kept labels);
- for scale: the permutation alone (the one step both must do as is, since
  it fixes the subset), a per-class loop in the style of the CIFAR-LT
  reference code (``np.where`` + shuffle per class; a different subset) and
  one epoch of ``ClassBalancedSampler``.

Every repetition runs every row once, in an order rotated from one
repetition to the next, so load changes on a shared machine hit all rows
alike; the table gives the median time per row, its ratio to the median of
the floor, and the median of the per-repetition ratios (each against the
floor of the same repetition).

``--list-file`` adds the end-to-end case: an MMPretrain ``CustomDataset``
parsed from a temporary list file of the same labels (no images), wrapped by
``LongTailDataset``; there the time is dominated by ``get_gt_labels``, which
MMPretrain implements as one ``get_data_info`` per sample.

    OMP_NUM_THREADS=1 python benchmarks/long_tail_index.py \\
        [--num-labels 1281167] [--repeats 11] [--list-file]
"""
import argparse
import logging
import os.path as osp
import statistics
import tempfile
import time

import numpy as np
from _timing import interleaved_times, median_ratio, paired_ratio
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset

from etf_plugin.datasets import ClassBalancedSampler, LongTailDataset
from etf_plugin.functional.long_tail import (class_sizes, long_tail_counts,
                                             long_tail_indices)


class LabelOnlyDataset:
    """A dataset reduced to what the wrapper reads: labels and class names."""

    def __init__(self, labels, num_classes):
        self.labels = labels
        self.metainfo = dict(classes=[f'n{c:08d}' for c in range(num_classes)])

    def __len__(self):
        return len(self.labels)

    def full_init(self):
        pass

    def get_gt_labels(self):
        return self.labels


def imagenet_like_labels(num_labels, num_classes, seed=0):
    # Like ImageNet-1k: most classes have 1300 images, a few as few as 732.
    rng = np.random.default_rng(seed)
    sizes = np.full(num_classes, 1300, dtype=np.int64)
    deficit = int(sizes.sum()) - num_labels
    if deficit < 0:
        raise ValueError(f'--num-labels above {sizes.sum()} is not '
                         f'ImageNet-like for {num_classes} classes.')
    while deficit > 0:
        c = rng.choice(np.flatnonzero(sizes == 1300))
        cut = min(deficit, int(rng.integers(1, 569)))
        sizes[c] -= cut
        deficit -= cut
    labels = np.repeat(np.arange(num_classes), sizes)
    return labels[rng.permutation(len(labels))]


def numpy_reference(labels, targets, seed):
    """The floor: the definition of the subset in plain NumPy."""
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    by_class = shuffled[np.argsort(labels[shuffled], kind='stable')]
    sorted_labels = labels[by_class]
    class_start = np.searchsorted(sorted_labels, np.arange(len(targets)))
    rank_in_class = np.arange(len(labels)) - class_start[sorted_labels]
    return np.sort(by_class[rank_in_class < targets[sorted_labels]])


def per_class_loop(labels, targets, seed):
    # The shape of the reference CIFAR-LT code, for comparison only.
    rng = np.random.default_rng(seed)
    kept = []
    for c, target in enumerate(targets):
        idx = np.where(labels == c)[0]
        rng.shuffle(idx)
        kept.append(idx[:target])
    return np.sort(np.concatenate(kept))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-labels', type=int, default=1_281_167)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--ratio', type=float, default=0.01)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeats', type=int, default=11)
    parser.add_argument(
        '--list-file',
        action='store_true',
        help='also time LongTailDataset over a CustomDataset list file')
    args = parser.parse_args()

    labels = imagenet_like_labels(args.num_labels, args.num_classes)
    available = class_sizes(labels, args.num_classes)
    # n_max = the largest class, as LongTailDataset's default does.
    n_max = int(available.max())
    targets = long_tail_counts(args.num_classes, n_max, args.ratio)
    dataset = LabelOnlyDataset(labels, args.num_classes)
    seed = args.seed
    indices = long_tail_indices(labels, targets, seed=seed)
    if not np.array_equal(indices, numpy_reference(labels, targets, seed)):
        raise AssertionError('long_tail_indices and the NumPy reference '
                             'chose different subsets.')
    wrapped = LongTailDataset(dataset, imbalance_ratio=args.ratio, seed=seed)
    if not np.array_equal(wrapped._ori_indices, indices):
        raise AssertionError('LongTailDataset chose a different subset.')
    # Its "fewer samples than the target" warning, once per repetition.
    MMLogger.get_current_instance().setLevel(logging.ERROR)

    floor = 'floor: NumPy reference'
    rows = [
        (floor, lambda: numpy_reference(labels, targets, seed)),
        ('long_tail_indices', lambda: long_tail_indices(labels, targets,
                                                        seed)),
        ('LongTailDataset full_init', lambda: LongTailDataset(
            dataset, imbalance_ratio=args.ratio, seed=seed)),
        ('  (permutation alone)', lambda: np.random.default_rng(seed).
         permutation(len(labels))),
        ('  (per-class loop, CIFAR-LT style)',
         lambda: per_class_loop(labels, targets, seed)),
        ('  (ClassBalancedSampler, 1 epoch)',
         lambda: list(ClassBalancedSampler(dataset, seed=seed))),
    ]
    times = interleaved_times(rows, args.repeats)  # rows rotated per rep
    print(f'labels: {len(labels):,}  classes: {args.num_classes}  '
          f'ratio: {args.ratio}  kept: {len(indices):,} (same subset as the '
          f'reference)  index memory: {indices.nbytes / 2**20:.1f} MiB  '
          f'repeats: {args.repeats}, interleaved')
    print(f'{"step":<36}{"median ms":>11}{"vs floor":>10}'
          f'{"paired":>9}')
    for name, _ in rows:
        median = statistics.median(times[name])
        vs_floor = median_ratio(times[name], times[floor])
        paired = paired_ratio(times[name], times[floor])
        print(f'{name:<36}{median * 1e3:>11.1f}{vs_floor:>9.2f}x'
              f'{paired:>8.2f}x')
    if args.list_file:
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'train.txt')
            with open(path, 'w') as f:
                f.writelines(f'train/{i}.jpg {y}\n'
                             for i, y in enumerate(labels.tolist()))
            start = time.perf_counter()
            custom = CustomDataset(data_root=tmp, ann_file='train.txt')
            parse = time.perf_counter() - start
            start = time.perf_counter()
            LongTailDataset(custom, imbalance_ratio=args.ratio)
            wrap = time.perf_counter() - start
        print(f'{"CustomDataset parse (once)":<36}{parse * 1e3:>11.1f}')
        print(f'{"LongTailDataset over it (once)":<36}{wrap * 1e3:>11.1f}')


if __name__ == '__main__':
    main()
