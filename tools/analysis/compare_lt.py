"""Long-tailed digits study: ETF + DR against a learnable classifier + CE
(and other baselines) over imbalance ratios and seeds.

Every run is a normal MMEngine training of a config in ``configs/`` with a
few overrides (seed, imbalance ratio, validation every epoch, a
``NeuralCollapseHook``); results are read back from the run's own logs
(``vis_data/scalars.json``, ``nc_metrics.json``). ``posthoc_la`` evaluates the
``ce`` run's final checkpoint with the logit-adjusted head (no training) and
``crt`` re-trains its classifier (stage 2), so both need ``ce`` first. Prints a markdown table of
mean ± std over seeds and writes ``runs.json``, ``table.md`` and
``curves.png`` (test accuracy and NC1 per epoch) to ``--out-dir``.

    python tools/analysis/compare_lt.py [--ratios 0.01 0.02 0.1]
        [--seeds 0 1 2 3 4] [--methods ce etf_ce etf_dr etf_dr_cb]
        [--out-dir work_dirs/compare_lt]
"""
import argparse
import json
import os
import os.path as osp
import time

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner

import etf_plugin  # noqa: F401
from lt_baselines import long_tail_overrides

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ETF = 'configs/resnet32_digitslt_etf.py'
CE = 'configs/resnet32_digitslt_ce.py'
LA = 'configs/resnet32_digitslt_la.py'
POSTHOC_LA = 'configs/resnet32_digitslt_posthoc_la.py'
CRT = 'configs/resnet32_digitslt_crt.py'

# name -> (config, --cfg-options, description)
METHODS = {
    'ce': (CE, {}, 'learnable linear classifier + CE'),
    'etf_ce': (ETF, {
        'model.head.loss':
        dict(_delete_=True, type='CrossEntropyLoss', loss_weight=1.0)
    }, 'fixed ETF + CE (logit scale 10)'),
    'etf_dr': (ETF, {
        'model.head.loss.class_balanced': False
    }, 'fixed ETF + DR (plain)'),
    'etf_dr_cb': (ETF, {}, 'fixed ETF + DR, class-balanced lengths'),
    'la': (LA, {}, 'learnable classifier + logit-adjusted CE (tau 1)'),
    'posthoc_la': (POSTHOC_LA, {}, 'the ce model, post-hoc logit adjusted'),
    'crt': (CRT, {}, 'the ce model, classifier re-trained class-balanced'),
}
# methods that start from the final checkpoint of the 'ce' run
FROM_CE = ('posthoc_la', 'crt')

GROUPS = ('top1', 'many', 'medium', 'few')


def run_one(method, ratio, seed, out_dir, extra_options, ce_dirs=()):
    """Train one configuration and return its per-epoch and final results.

    ``posthoc_la`` and ``crt`` start from the final checkpoint of the ``ce``
    run of the same ratio and seed, looked up in ``out_dir`` and then in
    ``ce_dirs``.
    """
    config, options, _ = METHODS[method]
    cfg = Config.fromfile(osp.join(REPO, config))
    name = f'{method}_r{ratio}_s{seed}'
    options = {
        **options,
        **long_tail_overrides(cfg, ratio, seed),
        'work_dir': osp.join(out_dir, name),
        'experiment_name': name,
        'randomness.seed': seed,
        'train_cfg.val_interval': 1,
        # no re-forking of the loader workers at every epoch
        'train_dataloader.persistent_workers': True,
        'val_dataloader.persistent_workers': True,
        'default_hooks.checkpoint.interval': -1,
        'default_hooks.logger.interval': 1000,
        'visualizer.vis_backends': [dict(type='LocalVisBackend')],
        **extra_options,
    }
    if method in FROM_CE:
        candidates = [
            osp.join(d, f'ce_r{ratio}_s{seed}', 'last_checkpoint')
            for d in (out_dir, *ce_dirs)
        ]
        found = [c for c in candidates if osp.exists(c)]
        if not found:
            raise FileNotFoundError(f'{method} needs the ce run first; '
                                    f'none of {candidates} exists.')
        with open(found[0]) as f:  # mmengine's pointer to the final .pth
            options['load_from'] = f.read().strip()
    cfg.merge_from_dict(options)
    cfg.custom_hooks = cfg.get('custom_hooks', []) + [
        dict(type='NeuralCollapseHook', interval=10, plot_file=None)
    ]
    start = time.time()
    runner = Runner.from_cfg(cfg)
    if method == 'posthoc_la':
        metrics = runner.test()
        acc = {g: [metrics.get(f'lt/{g}', float('nan'))] for g in GROUPS}
        return dict(method=method, ratio=ratio, seed=seed,
                    seconds=time.time() - start, acc=acc, nc=[{}])
    runner.train()
    return dict(
        method=method,
        ratio=ratio,
        seed=seed,
        seconds=time.time() - start,
        **read_logs(cfg.work_dir))


def read_logs(work_dir):
    """Per-epoch validation accuracies and NC records of a finished run."""
    stamp = sorted(d for d in os.listdir(work_dir) if d[:2] == '20')[-1]
    epochs = {g: [] for g in GROUPS}
    with open(osp.join(work_dir, stamp, 'vis_data', 'scalars.json')) as f:
        for line in f:
            record = json.loads(line)
            if 'lt/top1' in record:
                for g in GROUPS:
                    epochs[g].append(record.get(f'lt/{g}', float('nan')))
    nc = []
    with open(osp.join(work_dir, 'nc_metrics.json')) as f:
        for line in f:
            record = json.loads(line)
            nc.append({
                k: v
                for k, v in record.items() if isinstance(v, (int, float))
            })
    return dict(acc=epochs, nc=nc)


def epochs_to_95(curve):
    """First epoch (1-based) whose accuracy reaches 95 % of the final."""
    final = curve[-1]
    return next(i + 1 for i, a in enumerate(curve) if a >= 0.95 * final)


def summarise(runs, methods, ratios):
    """Markdown table of mean ± std over seeds."""
    lines = [
        '| ratio | method | top-1 | many | medium | few | epochs to 95% '
        '| NC1 | few-shot means cos |', '|' + '---|' * 9
    ]
    for ratio in ratios:
        for method in methods:
            rs = [r for r in runs if r['method'] == method and r['ratio'] ==
                  ratio]
            if not rs:
                continue
            cells = []
            for g in GROUPS:
                v = np.array([r['acc'][g][-1] for r in rs])
                # e.g. no few-shot class at a mild imbalance ratio
                cells.append('–' if np.isnan(v).all() else
                             f'{v.mean():.1f} ± {v.std():.1f}')
            if method == 'posthoc_la':  # no training, no curve, no NC
                cells += ['-', '-', '-']
            else:
                e = np.array([epochs_to_95(r['acc']['top1']) for r in rs])
                cells.append(f'{e.mean():.1f} ± {e.std():.1f}')
                for key in ('nc1', 'mc_means_cos_few'):
                    v = np.array(
                        [r['nc'][-1].get(key, np.nan) for r in rs])
                    cells.append(f'{np.nanmean(v):.3f}')
            lines.append(f'| {ratio} | {method} (n={len(rs)}) | ' +
                         ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(runs, methods, ratio, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_nc) = plt.subplots(1, 2, figsize=(11, 4))
    for method in methods:
        rs = [r for r in runs if r['method'] == method and r['ratio'] == ratio]
        if not rs or method in FROM_CE:  # no curve over the same epochs
            continue
        acc = np.array([r['acc']['top1'] for r in rs])
        ax_acc.plot(np.arange(1, acc.shape[1] + 1), acc.mean(0), label=method)
        steps = [rec['epoch'] for rec in rs[0]['nc']]
        nc1 = np.array([[rec['nc1'] for rec in r['nc']] for r in rs])
        ax_nc.plot(steps, nc1.mean(0), marker='o', label=method)
    ax_acc.set(xlabel='epoch', ylabel='test top-1 (%)',
               title=f'digits-LT, ratio {ratio}, mean over seeds')
    ax_nc.set(xlabel='epoch', ylabel='NC1 (train)', yscale='log',
              title='within-class variability')
    ax_acc.legend()
    ax_nc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ratios', type=float, nargs='+',
                        default=[0.01, 0.02, 0.1])
    parser.add_argument('--seeds', type=int, nargs='+',
                        default=[0, 1, 2, 3, 4])
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--out-dir', default='work_dirs/compare_lt')
    parser.add_argument(
        '--ce-dirs', nargs='*', default=[],
        help='other study dirs holding the ce runs that posthoc_la and crt '
        'start from')
    parser.add_argument(
        '--merge', nargs='*', default=[],
        help='runs.json files of other studies (e.g. run in parallel) to '
        'count as done and add to the table')
    parser.add_argument(
        '--table-only', action='store_true',
        help='run nothing: tabulate and plot the runs there are')
    parser.add_argument('--cfg-options', type=json.loads, default={},
                        help='JSON dict of extra overrides for every run')
    args = parser.parse_args()

    runs_path = osp.join(args.out_dir, 'runs.json')
    runs = []
    if osp.exists(runs_path):  # resume an interrupted study
        with open(runs_path) as f:
            runs = json.load(f)
    merged = []
    for path in args.merge:
        with open(path) as f:
            merged += json.load(f)
    done = {(r['method'], r['ratio'], r['seed']) for r in runs + merged}
    for ratio in [] if args.table_only else args.ratios:
        for seed in args.seeds:
            for method in args.methods:
                if (method, ratio, seed) in done:
                    continue
                runs.append(
                    run_one(method, ratio, seed, args.out_dir,
                            args.cfg_options, args.ce_dirs))
                with open(runs_path, 'w') as f:
                    json.dump(runs, f)
                r = runs[-1]
                print(f'[compare_lt] {method} ratio={ratio} seed={seed}: '
                      f'top1 {r["acc"]["top1"][-1]:.1f} few '
                      f'{r["acc"]["few"][-1]:.1f} ({r["seconds"]:.0f} s)',
                      flush=True)

    runs += merged
    table = summarise(runs, args.methods, args.ratios)
    with open(osp.join(args.out_dir, 'table.md'), 'w') as f:
        f.write(table + '\n')
    plot(runs, args.methods, args.ratios[0],
         osp.join(args.out_dir, 'curves.png'))
    print(table)


if __name__ == '__main__':
    main()
