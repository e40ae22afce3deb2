"""Overlay the neural-collapse curves of several runs in one PNG.

Each WORK_DIR must hold the ``nc_metrics.json`` that ``NeuralCollapseHook``
writes there, e.g. an ETF + DR run and its cross-entropy baseline::

    python tools/analysis/plot_nc.py work_dirs/etf_dr work_dirs/ce \\
        --labels "ETF+DR" "CE" --out nc_compare.png
"""
import argparse
import os.path as osp

from etf_plugin.visualization import load_nc_records, plot_nc_curves


def parse_args():
    parser = argparse.ArgumentParser(
        description='Overlay the NC curves (nc_metrics.json) of several runs')
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    parser.add_argument(
        '--out', default='nc_curves.png', help='the PNG to write')
    parser.add_argument(
        '--labels', nargs='+', help='one legend label per WORK_DIR '
        '(default: the directory names)')
    parser.add_argument(
        '--metrics', nargs='+', help='metrics to plot (default: nc1, the '
        'NC2 read-outs, nc3, nc4, wm_cos, mc_means_cos_few)')
    parser.add_argument(
        '--x-key', choices=['epoch', 'iter'], default='epoch',
        help='x axis')
    parser.add_argument(
        '--json-name', default='nc_metrics.json',
        help='file name inside each WORK_DIR')
    return parser.parse_args()


def main():
    args = parse_args()
    labels = args.labels or [
        osp.basename(osp.normpath(d)) for d in args.work_dirs
    ]
    if len(labels) != len(args.work_dirs):
        raise SystemExit(f'--labels got {len(labels)} names for '
                         f'{len(args.work_dirs)} work dirs.')
    runs = {}
    for label, work_dir in zip(labels, args.work_dirs):
        json_file = osp.join(work_dir, args.json_name)
        if not osp.isfile(json_file):
            raise SystemExit(f'{json_file} not found: was the run trained '
                             f'with NeuralCollapseHook in custom_hooks?')
        runs[label] = load_nc_records(json_file)
    plotted = plot_nc_curves(runs, args.out, args.metrics, args.x_key)
    print(f'Wrote {args.out}: {", ".join(plotted)} for {", ".join(runs)}')


if __name__ == '__main__':
    main()
