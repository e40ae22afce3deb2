"""Check a long-tail list file ("relative/path.jpg label" per line) against a
data root, and print the per-class counts and the many/medium/few split.

The list format is the one MMPretrain's ``CustomDataset`` / ``ImageNet``
read with ``ann_file``: each line split on its *last* space into a path
(joined to ``data_root`` / ``data_prefix``) and an integer label.

Errors (exit status 1), each with its line number: an empty list (no
image at all), unreadable or blank lines, lines that are not UTF-8, a UTF-8
byte-order mark (``CustomDataset`` reads it as part of the first path),
non-integer or negative labels, labels >= ``--num-classes``, missing image
files, absolute paths (they would silently ignore ``data_root``), and a path
listed with two different labels. Warnings: a path listed twice with the
same label, classes in ``[0, K)`` with no line.

    python tools/data/check_lt_list.py data/imagenet/ImageNet_LT_train.txt \\
        --data-root data/imagenet --num-classes 1000
"""
import argparse
import codecs
import os.path as osp
import sys
from collections import defaultdict

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
    """Return ``(num_lines, paths, labels, line_numbers, errors)``, errors
    as ``(line_no, message)``.

    The file is read as MMPretrain's ``CustomDataset`` reads it (UTF-8, one
    sample per line, split on the last space), except that a byte-order mark
    is reported and left out of the first path rather than made part of it.
    """
    num_lines = 0
    paths, labels, line_numbers, errors = [], [], [], []
    with open(list_file, 'rb') as f:
        raw_lines = f.read().splitlines()
    for line_no, raw in enumerate(raw_lines, start=1):
        num_lines = line_no
        if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
            errors.append((line_no, 'the file starts with a UTF-8 byte-order '
                           'mark, which CustomDataset reads as part of the '
                           'first path; save the list without it (e.g. '
                           "sed -i '1s/^\\xEF\\xBB\\xBF//' LIST)"))
        try:
            line = raw.decode('utf-8')
        except UnicodeDecodeError as error:
            errors.append((line_no, f'not UTF-8 ({error.reason} at byte '
                           f'{error.start}): {raw!r}'))
            continue
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
        line_numbers.append(line_no)
    return num_lines, paths, labels, line_numbers, errors


def check_duplicates(paths, labels, line_numbers):
    """``(errors, warnings)`` for paths listed more than once: an error when
    the lines give different labels (the image would count for two
    classes), a warning when they agree."""
    lines_of = defaultdict(list)
    for path, label, line_no in zip(paths, labels, line_numbers):
        lines_of[path].append((line_no, label))
    errors, warnings = [], []
    for path, entries in lines_of.items():
        if len(entries) < 2:
            continue
        where = ', '.join(f'line {n} (label {lab})' for n, lab in entries)
        if len({lab for _, lab in entries}) > 1:
            errors.append((entries[0][0], f'{path} is listed with different '
                           f'labels: {where}; keep the right one'))
        else:
            warnings.append(f'duplicate path {path}: {where}')
    return errors, warnings


def main(argv=None):
    args = parse_args(argv)
    num_lines, paths, labels, line_numbers, errors = parse_list(
        args.list_file)
    if not paths:
        errors.append((None, f'no image in {args.list_file} '
                       f'({num_lines} lines): the list is empty or no line '
                       f'parses, and CustomDataset would refuse it'))
    duplicate_errors, warnings = check_duplicates(paths, labels,
                                                  line_numbers)
    errors += duplicate_errors
    labels = np.asarray(labels, dtype=np.int64)

    num_classes = args.num_classes
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if len(labels) else 0
    out_of_range = np.flatnonzero(labels >= num_classes)
    for i in out_of_range:
        errors.append((line_numbers[i], f'{paths[i]}: label {labels[i]} >= '
                       f'--num-classes {num_classes}'))
    in_range = labels[labels < num_classes]

    if not args.skip_files:
        image_dir = osp.join(args.data_root, args.data_prefix)
        if not osp.isdir(image_dir):
            errors.append((None, f'data root {image_dir} is not a folder'))
        else:
            for path, line_no in zip(paths, line_numbers):
                if not osp.isfile(osp.join(image_dir, path)):
                    errors.append((line_no, 'missing file '
                                   f'{osp.join(image_dir, path)}'))

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

    errors.sort(key=lambda item: (item[0] is not None, item[0] or 0))
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
