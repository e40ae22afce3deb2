"""Minority collapse in the unconstrained feature model (UFM), three ways.

Sweeps the nuclear-norm weight ``lam = 2 sqrt(lambda_W lambda_H)`` across the
predicted minority-collapse threshold ``lam* = sqrt(n_minor) / N`` and, at
every point, trains the UFM (``etf_plugin.functional.ufm.train_ufm``) with a
learnable CE classifier, a fixed ETF + CE and a fixed ETF + DR. It prints a
table of the neural-collapse read-outs at convergence (minority-means cosine,
majority-means cosine, minority classifier cosine, feature-classifier
alignment, NC1, NC3, the convergence record), the simulated threshold (the
``lam / lam*`` where the learnable minority-means cosine first reaches
``--level``, interpolated), and, unless ``--no-convex``, how far the
learnable solution's mean logits are from the convex program's. It writes
``ufm_sweep.png`` and ``ufm_sweep.json`` to ``--out-dir``.

    python tools/analysis/ufm_simulation.py --out-dir work_dirs/ufm

CPU, float64, about a minute with the defaults.
"""
import argparse
import json
import math
import os
import os.path as osp
import time

import torch

from etf_plugin.functional.ufm import (UFM_MODES, class_mean_logits,
                                       class_means, first_crossing,
                                       minority_collapse_threshold,
                                       solve_ufm_convex, train_ufm,
                                       ufm_collapse_metrics)

DEFAULT_RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 1.02, 1.05, 1.1, 1.2,
                  1.3, 1.4, 1.5)
MODE_LABELS = dict(
    learnable_ce='learnable W + CE',
    etf_ce='fixed ETF + CE',
    etf_dr='fixed ETF + DR')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Sweep the UFM across the minority-collapse threshold.')
    parser.add_argument(
        '--n-major', type=int, default=500,
        help='samples per majority class (default 500)')
    parser.add_argument(
        '--n-minor', type=int, default=100,
        help='samples per minority class (default 100)')
    parser.add_argument(
        '--k-major', type=int, default=3,
        help='number of majority classes (default 3)')
    parser.add_argument(
        '--k-minor', type=int, default=7,
        help='number of minority classes (default 7)')
    parser.add_argument(
        '--dim', type=int, default=16,
        help='feature dimension, at least K (default 16)')
    parser.add_argument(
        '--ratios', type=float, nargs='+', default=list(DEFAULT_RATIOS),
        help='values of lam / lam* to simulate, increasing (default: 0.5 ... '
        '1.5, denser near 1 but not at 1, where convergence is slowest)')
    parser.add_argument(
        '--weight-split', type=float, default=1.0,
        help='lambda_W / lambda_H; only the product enters lam (default 1)')
    parser.add_argument(
        '--lambda-b', type=float, default=None,
        help='weight decay of a learnable bias (default: no bias)')
    parser.add_argument(
        '--level', type=float, default=0.99,
        help='minority cosine that marks collapse (default 0.99)')
    parser.add_argument(
        '--max-iter', type=int, default=20000,
        help='L-BFGS iterations per run (default 20000)')
    parser.add_argument(
        '--grad-tol', type=float, default=1e-8,
        help='gradient-norm tolerance (default 1e-8)')
    parser.add_argument('--seed', type=int, default=0, help='init seed')
    parser.add_argument(
        '--no-convex', action='store_true',
        help='skip the cvxpy cross-check of the learnable runs')
    parser.add_argument(
        '--out-dir', default='work_dirs/ufm',
        help='where to write ufm_sweep.png / .json (default work_dirs/ufm)')
    return parser.parse_args(argv)


def simulate(counts, ratio, lam_star, mode, args):
    """Train one UFM and return its table row."""
    lam = ratio * lam_star
    # 2 sqrt(lambda_W lambda_H) = lam for any split.
    lambda_w = lam / 2 * math.sqrt(args.weight_split)
    lambda_h = lam / 2 / math.sqrt(args.weight_split)
    start = time.time()
    result = train_ufm(
        counts,
        args.dim,
        lambda_w,
        lambda_h,
        mode=mode,
        lambda_b=args.lambda_b if mode == 'learnable_ce' else None,
        max_iter=args.max_iter,
        grad_tol=args.grad_tol,
        seed=args.seed)
    metrics = ufm_collapse_metrics(result, counts)
    means = class_means(result['features'], result['labels'], len(counts))
    within = result['features'] - means[result['labels']]
    norms = means.norm(dim=1)
    minority = torch.tensor(counts) == min(counts)
    row = dict(
        ratio=ratio,
        lam=lam,
        mode=mode,
        minority_cos=metrics['mc_means_cos_few'],
        majority_cos=metrics.get('mc_means_cos_many', float('nan')),
        minority_w_cos=metrics['mc_w_cos_few'],
        wm_cos=metrics['wm_cos'],
        nc1=metrics['nc1'],
        nc3=metrics['nc3'],
        # The NC1 cross-check that needs no pseudo-inverse: how far the
        # farthest sample sits from its class mean.
        max_within_class_dev=within.norm(dim=1).max().item(),
        # Past a second threshold the minority means vanish (convex solve,
        # research notes E3) and their cosine means nothing: this shows where.
        minority_norm_ratio=(norms[minority].mean() /
                             norms[~minority].mean()).item(),
        objective=result['objective'],
        grad_norm=result['grad_norm'],
        objective_change=result['objective_change'],
        iterations=result['iterations'],
        converged=result['converged'],
        seconds=time.time() - start)
    if mode == 'learnable_ce' and not args.no_convex:
        convex = solve_ufm_convex(counts, lam, lambda_b=args.lambda_b)
        simulated = class_mean_logits(result['features'], result['labels'],
                                      result['classifier'])
        reference = convex['mean_logits']
        row['convex_rel_diff'] = ((simulated - reference).norm() /
                                  reference.norm()).item()
        row['convex_objective_gap'] = result['objective'] - convex['objective']
    return row


def print_tables(rows, num_classes):
    etf_cos = -1 / (num_classes - 1)
    print(f'\nMinority-means cosine (ETF value -1/(K-1) = {etf_cos:.4f}):\n')
    header = '| lam/lam* | ' + ' | '.join(MODE_LABELS[m] for m in UFM_MODES)
    print(header + ' | learnable: majority cos '
          '| learnable: minority / majority mean norm '
          '| learnable: mean logits vs convex (rel. Frobenius) |')
    print('|' + '---|' * (len(UFM_MODES) + 4))
    for ratio in sorted({r['ratio'] for r in rows}):
        at = {r['mode']: r for r in rows if r['ratio'] == ratio}
        cells = [f"{at[m]['minority_cos']:+.4f}" for m in UFM_MODES]
        learnable = at['learnable_ce']
        diff = learnable.get('convex_rel_diff')
        cells.append(f"{learnable['majority_cos']:+.4f}")
        cells.append(f"{learnable['minority_norm_ratio']:.2g}")
        cells.append('-' if diff is None else f'{diff:.1e}')
        print(f'| {ratio:.2f} | ' + ' | '.join(cells) + ' |')

    print('\nAll runs:\n')
    columns = ('ratio', 'mode', 'minority_cos', 'minority_w_cos',
               'majority_cos', 'minority_norm_ratio', 'wm_cos', 'nc1',
               'max_within_class_dev',
               'nc3', 'grad_norm', 'objective_change', 'iterations',
               'seconds')
    print('| ' + ' | '.join(columns) + ' |')
    print('|' + '---|' * len(columns))
    for row in rows:
        cells = []
        for key in columns:
            value = row[key]
            if key == 'ratio':
                cells.append(f'{value:.2f}')
            elif key in ('mode', 'iterations'):
                cells.append(str(value))
            elif key in ('nc1', 'max_within_class_dev', 'grad_norm',
                         'objective_change', 'minority_norm_ratio'):
                cells.append(f'{value:.1e}')
            elif key == 'seconds':
                cells.append(f'{value:.1f}')
            else:
                cells.append(f'{value:+.4f}')
        print('| ' + ' | '.join(cells) + ' |')


def plot(rows, summary, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    markers = dict(learnable_ce='o', etf_ce='s', etf_dr='^')
    for mode in UFM_MODES:
        points = [r for r in rows if r['mode'] == mode]
        ax.plot([r['ratio'] for r in points],
                [r['minority_cos'] for r in points],
                marker=markers[mode],
                markersize=4,
                label=MODE_LABELS[mode])
    learnable = [r for r in rows if r['mode'] == 'learnable_ce']
    ax.plot([r['ratio'] for r in learnable],
            [r['minority_w_cos'] for r in learnable],
            color='tab:blue',
            ls='--',
            lw=1,
            label='learnable W + CE: minority classifier rows')
    vanished = [r for r in learnable if r['minority_norm_ratio'] < 1e-3]
    if vanished:
        ax.plot([r['ratio'] for r in vanished],
                [r['minority_cos'] for r in vanished],
                'kx',
                markersize=8,
                label='minority means vanished: cosine undefined')
    ax.axvline(1.0, color='k', ls='--', lw=1, label=r'predicted $\lambda^*$')
    crossing = summary['simulated_threshold_ratio']
    if crossing is not None:
        ax.axvline(crossing, color='tab:red', ls=':', lw=1.5,
                   label=f'simulated ({crossing:.3f}' + r'$\lambda^*$)')
    ax.axhline(summary['etf_cos'], color='gray', lw=0.8, ls='-.',
               label=r'$-1/(K-1)$')
    ax.set_xlabel(r'$\lambda / \lambda^*$,  $\lambda = 2\sqrt{\lambda_W'
                  r'\lambda_H}$,  $\lambda^* = \sqrt{n_B}/N$')
    ax.set_ylabel('mean pairwise cosine of minority class means')
    ax.set_title(summary['setting'], fontsize=9)
    ax.legend(fontsize=8)

    ax = axes[1]
    points = [r for r in learnable if 'convex_rel_diff' in r]
    if points:
        ax.semilogy([r['ratio'] for r in points],
                    [r['convex_rel_diff'] for r in points], 'o-',
                    label=r'$\|Z_{UFM} - Z_{cvx}\|_F / \|Z_{cvx}\|_F$')
    ax.semilogy([r['ratio'] for r in learnable],
                [r['grad_norm'] for r in learnable], 's-',
                label='final gradient norm (learnable)')
    ax.axvline(1.0, color='k', ls='--', lw=1)
    ax.set_xlabel(r'$\lambda / \lambda^*$')
    ax.set_title('learnable W + CE: agreement with the convex program',
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    # The problems are tiny: extra BLAS threads only spin, badly so on a
    # shared machine.
    torch.set_num_threads(1)
    if list(args.ratios) != sorted(args.ratios):
        raise ValueError('--ratios must be increasing.')
    counts = [args.n_major] * args.k_major + [args.n_minor] * args.k_minor
    num_classes = len(counts)
    lam_star = minority_collapse_threshold(args.n_major, args.n_minor,
                                           args.k_major, args.k_minor)
    setting = (f'K={num_classes}: {args.k_major} x {args.n_major} + '
               f'{args.k_minor} x {args.n_minor} samples (R='
               f'{args.n_major / args.n_minor:g}), d={args.dim}, bias '
               f"{'off' if args.lambda_b is None else args.lambda_b}, "
               f'lam*={lam_star:.6f}')
    print(setting)

    rows = []
    for ratio in args.ratios:
        for mode in UFM_MODES:
            rows.append(simulate(counts, ratio, lam_star, mode, args))
            row = rows[-1]
            print(f"lam/lam*={ratio:.2f} {mode:12s} minority cos "
                  f"{row['minority_cos']:+.4f}  grad {row['grad_norm']:.1e}"
                  f"  iters {row['iterations']}  {row['seconds']:.1f}s",
                  flush=True)

    print_tables(rows, num_classes)

    etf_cos = -1 / (num_classes - 1)
    learnable = [r for r in rows if r['mode'] == 'learnable_ce']
    crossing = first_crossing([r['ratio'] for r in learnable],
                              [r['minority_cos'] for r in learnable],
                              args.level)
    etf_dev = {
        mode: max(abs(r['minority_cos'] - etf_cos) for r in rows
                  if r['mode'] == mode)
        for mode in UFM_MODES if mode != 'learnable_ce'
    }
    summary = dict(
        setting=setting,
        class_counts=counts,
        lam_star=lam_star,
        etf_cos=etf_cos,
        level=args.level,
        simulated_threshold_ratio=crossing,
        simulated_threshold=None if crossing is None else crossing * lam_star,
        max_etf_minority_cos_deviation=etf_dev,
        max_grad_norm=max(r['grad_norm'] for r in rows),
        all_converged=all(r['converged'] for r in rows),
        max_convex_rel_diff=max(
            (r['convex_rel_diff'] for r in learnable
             if 'convex_rel_diff' in r), default=None))

    print(f'\npredicted threshold lam* = sqrt(n_B)/N = {lam_star:.6f}')
    if crossing is None:
        print(f'simulated: the learnable minority cosine never reached '
              f'{args.level} in the sweep')
    else:
        print(f'simulated (learnable minority cosine reaches {args.level}): '
              f'{crossing * lam_star:.6f} = {crossing:.4f} lam* '
              f'({100 * (crossing - 1):+.1f} %)')
    vanished = [r['ratio'] for r in learnable
                if r['minority_norm_ratio'] < 1e-3]
    if vanished:
        print(f'learnable: the minority means vanished (norm below 1e-3 of '
              f'the majority) at lam/lam* = {vanished}; their cosine is '
              f'undefined there')
    for mode, dev in etf_dev.items():
        print(f'{MODE_LABELS[mode]}: max |minority cos - (-1/(K-1))| over '
              f'the sweep = {dev:.1e}')
    print(f"largest final gradient norm {summary['max_grad_norm']:.1e}, "
          f"all converged: {summary['all_converged']}")
    if summary['max_convex_rel_diff'] is not None:
        print(f"largest |Z_UFM - Z_cvx|_F / |Z_cvx|_F = "
              f"{summary['max_convex_rel_diff']:.1e}")

    os.makedirs(args.out_dir, exist_ok=True)
    png = osp.join(args.out_dir, 'ufm_sweep.png')
    plot(rows, summary, png)
    with open(osp.join(args.out_dir, 'ufm_sweep.json'), 'w') as f:
        json.dump(dict(args=vars(args), summary=summary, runs=rows), f,
                  indent=1)
    print(f'wrote {png} and ufm_sweep.json')


if __name__ == '__main__':
    main()
