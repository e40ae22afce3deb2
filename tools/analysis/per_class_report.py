"""Per-class report of a checkpoint on its config's test set.

    python tools/analysis/per_class_report.py CONFIG CHECKPOINT \\
        [--work-dir DIR] [--out-dir DIR] [--title NAME] \\
        [--logit-adjust {train,uniform}] [--compare REPORT_DIR ...] \\
        [--cfg-options k=v ...]

Runs the config's test loop on the checkpoint with ``PerClassReport`` added
(and ``LongTailCalibration`` / ``LabelShiftAccuracy`` where the config has
none), then writes to ``--out-dir``:

- ``per_class.csv`` / ``per_class.md``: per class, training and test
  samples, accuracy, mean confidence, the most-confused class;
- ``accuracy_vs_train_count.png``: accuracy against training samples (log);
- ``metrics.json``: every test metric (accuracy, shot groups, calibration,
  shifted-label accuracies);
- ``lt_shift.png``: accuracy against the test label imbalance.

With ``--compare`` (directories of earlier reports, e.g. a baseline), the
two figures overlay every report and ``comparison.md`` puts them side by
side. The training counts come from the checkpoint (``ClassCountsHook``).
"""
import argparse
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import etf_plugin  # noqa: F401  (registers the plugin's modules)
from etf_plugin.evaluation.long_tail_report import (add_long_tail_report,
                                                    load_report,
                                                    save_report_metrics,
                                                    write_comparison)
from etf_plugin.functional.label_shift import DEFAULT_SHIFT_RATIOS

SUMMARY_KEYS = ('accuracy/top1', 'lt/many', 'lt/medium', 'lt/few',
                'calib/ece', 'calib/mce', 'calib/nll', 'calib/ece_many',
                'calib/ece_medium', 'calib/ece_few') + tuple(
                    f'lt_shift/{variant}{name}' for variant in ('', 'la_')
                    for name in ('forward_50', 'forward_10', 'uniform',
                                 'backward_10', 'backward_50'))


def parse_args():
    parser = argparse.ArgumentParser(
        description='Per-class report (CSV, Markdown, figures) of a '
        'checkpoint on its config\'s test set')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='logs of the test run (default: '
        'work_dirs/per_class_report/<config name>)')
    parser.add_argument(
        '--out-dir', help='report directory (default: the work dir)')
    parser.add_argument(
        '--title', help='name of the model in figures and tables '
        '(default: the config name)')
    parser.add_argument(
        '--logit-adjust', choices=['train', 'uniform'],
        help='also report post-hoc logit adjustment to each shifted test '
        'prior, taking the scores as estimates under the training prior '
        '(a plainly trained model) or the uniform one (a balanced model)')
    parser.add_argument(
        '--compare', nargs='+', default=[], metavar='REPORT_DIR',
        help='earlier reports to overlay in the figures and comparison.md')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, as key=value pairs')
    return parser.parse_args()


def main():
    args = parse_args()
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'per_class_report',
                                         name)
    out_dir = args.out_dir or work_dir
    title = args.title or name
    for report_dir in args.compare:
        if not osp.isfile(osp.join(report_dir, 'metrics.json')):
            raise SystemExit(f'{report_dir} holds no report (metrics.json): '
                             f'give directories this tool wrote.')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.load_from = args.checkpoint
    cfg.work_dir = work_dir
    add_long_tail_report(cfg, out_dir, title, args.logit_adjust)
    metrics = Runner.from_cfg(cfg).test()
    save_report_metrics(out_dir, title, metrics, config=args.config,
                        checkpoint=osp.basename(args.checkpoint))
    shift = [m for m in cfg.test_evaluator
             if m['type'] == 'LabelShiftAccuracy'][0]
    thresholds = [m for m in cfg.test_evaluator
                  if m['type'] == 'PerClassReport'][0]
    write_comparison(
        [load_report(out_dir)] + [load_report(d) for d in args.compare],
        out_dir,
        ratios=shift.get('ratios', DEFAULT_SHIFT_RATIOS),
        shot_thresholds=(thresholds.get('few_thr', 20),
                         thresholds.get('many_thr', 100)),
        summary_keys=SUMMARY_KEYS)
    print(f'Wrote the report of {args.checkpoint} to {out_dir}')


if __name__ == '__main__':
    main()
