"""Check a long-tail list file ("relative/path.jpg label" per line) against a
data root, and print the per-class counts and the many/medium/few split.

The list format is the one MMPretrain's ``CustomDataset`` / ``ImageNet``
read with ``ann_file``: each line split on its *last* space into a path
(joined to ``data_root`` / ``data_prefix``) and an integer label.

Errors (exit status 1): unreadable or blank lines, non-integer or negative
labels, labels >= ``--num-classes``, missing image files, absolute paths
(they would silently ignore ``data_root``). Warnings: duplicate paths,
classes in ``[0, K)`` with no line.

    python tools/data/check_lt_list.py data/imagenet/ImageNet_LT_train.txt \\
        --data-root data/imagenet --num-classes 1000
"""
import argparse
import os.path as osp
import sys
from collections import Counter

import numpy as np

from etf_plugin.functional.long_tail import class_sizes, shot_groups


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check an ImageNet-LT style list file.')
    parser.add_argument('list_file', help='the list file to check')
    parser.add_argument(
        '--data-root', required=True, help='folder the paths are relative to')
    parser.add_argument(
        '--data-prefix',
        default='',
        help='sub-folder of --data-root the paths start from, as the '
        "dataset's data_prefix (default: none)")
    parser.add_argument(
        '--num-classes', type=int, help='K: labels must lie in [0, K)')
    parser.add_argument(
        '--many-thr', type=float, default=100,
        help='many-shot: more images than this (default 100)')
    parser.add_argument(
        '--few-thr', type=float, default=20,
        help='few-shot: fewer images than this (default 20)')
    parser.add_argument(
        '--skip-files', action='store_true',
        help='do not check that the image files exist')
    parser.add_argument(
        '--show', type=int, default=10,
        help='problems listed per kind (default 10)')
    return parser.parse_args(argv)


def parse_list(list_file):
    """Return ``(num_lines, paths, labels, errors)``, errors as
    ``(line_no, message)``."""
    num_lines = 0
    paths, labels, errors = [], [], []
    with open(list_file) as f:
        for line_no, line in enumerate(f, start=1):
            num_lines = line_no
            line = line.rstrip('\n\r')
            if not line.strip():
                errors.append((line_no, 'blank line (CustomDataset cannot '
                               'parse it)'))
                continue
            parts = line.strip().rsplit(' ', 1)
            if len(parts) != 2:
                errors.append((line_no, f'no label: {line!r}'))
                continue
            path, label = parts
            try:
                label = int(label)
            except ValueError:
                errors.append((line_no, f'label is not an integer: {line!r}'))
                continue
            if label < 0:
                errors.append((line_no, f'negative label: {line!r}'))
                continue
            if osp.isabs(path):
                errors.append((line_no, f'absolute path {path!r}: it would '
                               f'ignore data_root; make it relative'))
                continue
            paths.append(path)
            labels.append(label)
    return num_lines, paths, labels, errors


def main(argv=None):
    args = parse_args(argv)
    num_lines, paths, labels, errors = parse_list(args.list_file)
    labels = np.asarray(labels, dtype=np.int64)
    warnings = []

    num_classes = args.num_classes
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if len(labels) else 0
    out_of_range = np.flatnonzero(labels >= num_classes)
    for i in out_of_range:
        errors.append((None, f'{paths[i]}: label {labels[i]} >= '
                       f'--num-classes {num_classes}'))
    in_range = labels[labels < num_classes]

    if not args.skip_files:
        image_dir = osp.join(args.data_root, args.data_prefix)
        if not osp.isdir(image_dir):
            errors.append((None, f'data root {image_dir} is not a folder'))
        else:
            missing = [p for p in paths if not osp.isfile(
                osp.join(image_dir, p))]
            for p in missing:
                errors.append((None, f'missing file {osp.join(image_dir, p)}'))

    duplicates = [p for p, n in Counter(paths).items() if n > 1]
    for p in duplicates:
        warnings.append(f'duplicate path {p}')

    counts = class_sizes(in_range, num_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        warnings.append(f'{len(empty)} of {num_classes} classes have no '
                        f'image, e.g. {empty[:args.show].tolist()}')

    print(f'{args.list_file}: {num_lines} lines, {len(in_range)} images with '
          f'a valid label, {num_classes} classes')
    nonempty = counts[counts > 0]
    if len(nonempty):
        print(f'images per class: max {nonempty.max()}, min {nonempty.min()}, '
              f'median {int(np.median(nonempty))}, imbalance max/min '
              f'{nonempty.max() / nonempty.min():.1f}')
    groups = shot_groups(counts, args.many_thr, args.few_thr)
    bounds = dict(
        many=f'> {args.many_thr:g}',
        medium=f'{args.few_thr:g}-{args.many_thr:g}',
        few=f'< {args.few_thr:g}')
    print(f'{"split":<8}{"images/class":>14}{"classes":>10}{"images":>10}')
    for name, members in groups.items():
        members = members[counts[members] > 0]  # empty classes: warned above
        print(f'{name:<8}{bounds[name]:>14}{len(members):>10}'
              f'{int(counts[members].sum()):>10}')

    for kind, items in (('warning', warnings), ('error', errors)):
        if items:
            print(f'{len(items)} {kind}(s):', file=sys.stderr)
        for item in items[:args.show]:
            if isinstance(item, tuple):
                line_no, message = item
                where = f'line {line_no}: ' if line_no else ''
                item = where + message
            print(f'  {kind}: {item}', file=sys.stderr)
        if len(items) > args.show:
            print(f'  ... and {len(items) - args.show} more', file=sys.stderr)
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
