"""The long-tail baselines on digits-LT for one imbalance ratio and seed, as
plain ``tools/train.py`` / ``tools/test.py`` / ``tau_norm.py`` commands.

    python tools/analysis/lt_baselines.py --ratio 0.01 --seed 0 \\
        [--baselines ce la posthoc_la tau_norm crt] [--work-root DIR] [--run]

prints the commands (``--run`` also runs them, in order, and prints a table
of the test metrics). Each baseline ends with a ``tools/test.py`` run that
writes ``DIR/<baseline>_r<ratio>_s<seed>/test_metrics.pkl``.

A config holds several copies of its training set config: the training
dataloader's, and those from which the ``LongTailAccuracy`` metric, the
``LogitAdjustedLoss`` and the ``PostHocLogitAdjustedHead`` count the training
samples per class. :func:`long_tail_overrides` finds every one of them, so
the ratio and seed change everywhere at once; use it from Python too::

    cfg.merge_from_dict(long_tail_overrides(cfg, imbalance_ratio=0.02,
                                            seed=1))
"""
import argparse
import os.path as osp
import pickle
import shlex
import subprocess
import sys

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = dict(
    ce='configs/resnet32_digitslt_ce.py',
    la='configs/resnet32_digitslt_la.py',
    posthoc_la='configs/resnet32_digitslt_posthoc_la.py',
    crt='configs/resnet32_digitslt_crt.py',
)
BASELINES = ('ce', 'la', 'posthoc_la', 'tau_norm', 'crt')
# The baselines that start from the cross-entropy model.
NEEDS_CE = ('posthoc_la', 'tau_norm', 'crt')
METRICS = ('accuracy/top1', 'lt/many', 'lt/medium', 'lt/few')


def long_tail_paths(node, prefix=''):
    """Dotted paths (list items by index) of every ``LongTailDataset``
    config inside ``node``."""
    paths = []
    if isinstance(node, dict):
        if node.get('type') == 'LongTailDataset':
            paths.append(prefix.rstrip('.'))
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return paths
    for key, value in items:
        paths += long_tail_paths(value, f'{prefix}{key}.')
    return paths


def long_tail_overrides(cfg, imbalance_ratio=None, seed=None):
    """``--cfg-options`` that set the imbalance ratio and subsample seed of
    every ``LongTailDataset`` in ``cfg`` (and the training seed).

    Args:
        cfg (Config): The config.
        imbalance_ratio (float, optional): ``n_min / n_max``.
        seed (int, optional): Seed of the subsample and of the run
            (``randomness.seed``).

    Returns:
        dict: Dotted keys to values, for ``Config.merge_from_dict``.
    """
    paths = long_tail_paths(cfg.to_dict())
    if not paths:
        raise ValueError('The config has no LongTailDataset.')
    overrides = {}
    for path in paths:
        if imbalance_ratio is not None:
            overrides[f'{path}.imbalance_ratio'] = imbalance_ratio
        if seed is not None:
            overrides[f'{path}.seed'] = seed
    if seed is not None:
        overrides['randomness.seed'] = seed
    return overrides


def as_cli(overrides):
    """``{'a.b': 1}`` -> ``['a.b=1']``."""
    return [f'{key}={value}' for key, value in overrides.items()]


def baseline_commands(baseline, imbalance_ratio, seed, work_root):
    """The commands (argv lists, run from the repository root) of one
    baseline; the CE baseline's run must exist for those in
    :data:`NEEDS_CE`."""
    if baseline not in BASELINES:
        raise ValueError(f'Unknown baseline {baseline!r}; choose from '
                         f'{BASELINES}.')
    python = 'python'  # main() runs it as sys.executable

    def run_dir(name):
        return osp.join(work_root, f'{name}_r{imbalance_ratio}_s{seed}')

    def options(config):
        cfg = Config.fromfile(osp.join(REPO, config))
        return as_cli(long_tail_overrides(cfg, imbalance_ratio, seed))

    def test(config, checkpoint, work_dir):
        return [
            python, 'tools/test.py', config, checkpoint, '--work-dir',
            work_dir, '--out',
            osp.join(work_dir, 'test_metrics.pkl'), '--out-item', 'metrics',
            '--cfg-options', *options(config)
        ]

    def last_checkpoint(config, work_dir):
        cfg = Config.fromfile(osp.join(REPO, config))
        return osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')

    ce_checkpoint = last_checkpoint(CONFIGS['ce'], run_dir('ce'))
    work_dir = run_dir(baseline)
    if baseline in ('ce', 'la'):
        config = CONFIGS[baseline]
        return [[
            python, 'tools/train.py', config, '--work-dir', work_dir,
            '--cfg-options', *options(config)
        ],
                test(config, last_checkpoint(config, work_dir), work_dir)]
    if baseline == 'posthoc_la':
        return [test(CONFIGS['posthoc_la'], ce_checkpoint, work_dir)]
    if baseline == 'tau_norm':
        checkpoint = osp.join(work_dir, 'tau_norm.pth')
        return [[
            python, 'tools/analysis/tau_norm.py', CONFIGS['ce'], ce_checkpoint,
            '--sweep', '0,0.25,0.5,0.75,1,1.25,1.5', '--val-from-train', '20',
            '--out', checkpoint, '--cfg-options', *options(CONFIGS['ce'])
        ],
                test(CONFIGS['ce'], checkpoint, work_dir)]
    config = CONFIGS['crt']
    return [[
        python, 'tools/train.py', config, '--work-dir', work_dir,
        '--cfg-options', f'load_from={ce_checkpoint}', *options(config)
    ],
            test(config, last_checkpoint(config, work_dir), work_dir)]


def read_metrics(baselines, imbalance_ratio, seed, work_root):
    """``{baseline: metrics}`` from the runs' ``test_metrics.pkl``."""
    results = {}
    for baseline in baselines:
        path = osp.join(work_root, f'{baseline}_r{imbalance_ratio}_s{seed}',
                        'test_metrics.pkl')
        if osp.exists(path):
            with open(path, 'rb') as f:
                results[baseline] = pickle.load(f)
    return results


def format_table(results):
    """A markdown table of the test metrics, one row per baseline."""
    lines = [
        '| baseline | ' + ' | '.join(METRICS) + ' |',
        '|---' * (len(METRICS) + 1) + '|'
    ]
    for baseline, metrics in results.items():
        lines.append(f'| {baseline} | ' +
                     ' | '.join(f'{metrics[k]:.1f}' if k in metrics else '-'
                                for k in METRICS) + ' |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Commands of the long-tail baselines on digits-LT.')
    parser.add_argument(
        '--ratio',
        type=float,
        default=0.01,
        help='imbalance ratio n_min / n_max (default 0.01)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the '
        'long-tailed subsample and of training (default 0)')
    parser.add_argument(
        '--baselines',
        nargs='+',
        choices=BASELINES,
        default=list(BASELINES),
        help='which baselines (default: all)')
    parser.add_argument(
        '--work-root',
        default='work_dirs/baselines',
        help='parent of the runs\' work dirs (default work_dirs/baselines)')
    parser.add_argument(
        '--run',
        action='store_true',
        help='run the commands, then print '
        'the table of test metrics')
    args = parser.parse_args(argv)
    if args.run and set(args.baselines) & set(NEEDS_CE) and \
            'ce' not in args.baselines and not osp.exists(
                osp.join(REPO, args.work_root,
                         f'ce_r{args.ratio}_s{args.seed}')):
        parser.error(f'{sorted(set(args.baselines) & set(NEEDS_CE))} start '
                     f'from the CE run: add ce to --baselines')
    return args


def main(argv=None):
    args = parse_args(argv)
    # The CE run first: the others start from its checkpoint.
    order = [b for b in BASELINES if b in args.baselines]
    for baseline in order:
        for command in baseline_commands(baseline, args.ratio, args.seed,
                                         args.work_root):
            print(shlex.join(command), flush=True)
            if args.run:
                subprocess.run([sys.executable, *command[1:]],
                               cwd=REPO,
                               check=True)
    if args.run:
        print(
            format_table(
                read_metrics(order, args.ratio, args.seed,
                             osp.join(REPO, args.work_root))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
