"""Time to build a long-tail subset index over ImageNet-sized labels.

1,281,167 labels over 1,000 classes shaped like ImageNet-1k's training set
(most classes 1,300 images, a few down to 732), exponential profile with
imbalance ratio 0.01 and ``n_max`` = the largest class. Rows: the target
counts, the index choice (``long_tail_indices``), the whole
``LongTailDataset.full_init`` over a label-only dataset, for scale a
per-class loop in the style of the CIFAR-LT reference code (``np.where`` +
shuffle per class), and one epoch of ``ClassBalancedSampler``. Each row is
the median of ``--repeats`` runs, measured side by side in one process.

``--list-file`` adds the end-to-end case: an MMPretrain ``CustomDataset``
parsed from a temporary list file of the same labels (no images), wrapped by
``LongTailDataset``; there the time is dominated by ``get_gt_labels``, which
MMPretrain implements as one ``get_data_info`` per sample.

    python benchmarks/long_tail_index.py [--num-labels 1281167] [--repeats 5]
        [--list-file]
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time

import numpy as np
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


def per_class_loop(labels, targets, seed):
    # The shape of the reference CIFAR-LT code, for comparison only.
    rng = np.random.default_rng(seed)
    kept = []
    for c, target in enumerate(targets):
        idx = np.where(labels == c)[0]
        rng.shuffle(idx)
        kept.append(idx[:target])
    return np.sort(np.concatenate(kept))


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-labels', type=int, default=1_281_167)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--ratio', type=float, default=0.01)
    parser.add_argument('--repeats', type=int, default=5)
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
    indices = long_tail_indices(labels, targets, seed=0)

    rows = [
        ('long_tail_counts',
         lambda: long_tail_counts(args.num_classes, n_max, args.ratio)),
        ('long_tail_indices',
         lambda: long_tail_indices(labels, targets, seed=0)),
        ('LongTailDataset full_init',
         lambda: LongTailDataset(dataset, imbalance_ratio=args.ratio)),
        ('per-class loop (reference style)',
         lambda: per_class_loop(labels, targets, seed=0)),
        ('ClassBalancedSampler: build + 1 epoch',
         lambda: list(ClassBalancedSampler(dataset, seed=0))),
    ]
    print(f'labels: {len(labels):,}  classes: {args.num_classes}  '
          f'ratio: {args.ratio}  kept: {len(indices):,}  '
          f'index memory: {indices.nbytes / 2**20:.1f} MiB '
          f'(int64, {indices.nbytes / len(indices):.0f} B per kept sample)')
    print(f'{"step":<40}{"median (s)":>12}')
    for name, fn in rows:
        print(f'{name:<40}{median_time(fn, args.repeats):>12.3f}')
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
        print(f'{"CustomDataset parse (MMPretrain, once)":<40}{parse:>12.3f}')
        print(f'{"LongTailDataset over it (once)":<40}{wrap:>12.3f}')


if __name__ == '__main__':
    main()
