"""The UFM studies behind docs/results_ufm.md: the sweep across the
minority-collapse threshold, the threshold bracketed by bisection, and the
gradient-descent race between CE and DR under the same fixed ETF.

Each function returns a JSON-able dict (what ``tools/analysis/
ufm_simulation.py`` writes to ``docs/data/``); the page is rendered from
those files by :mod:`research.ufm_report`.
"""
import math
import time
from typing import Optional, Sequence

import torch

from .ufm import (ALL_MODES, class_mean_logits, class_means,
                  bisect_threshold, gradient_descent_race,
                  minority_collapse_threshold, shared_etf_threshold,
                  solve_ufm_convex, train_ufm, ufm_collapse_metrics)

SETTINGS = dict(
    A=dict(n_major=500, n_minor=100, k_major=3, k_minor=7, dim=16,
           lambda_b=None),
    B=dict(n_major=500, n_minor=100, k_major=5, k_minor=5, dim=16,
           lambda_b=0.01),
)
SWEEP_RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 1.02, 1.05, 1.1, 1.2,
                1.3, 1.4, 1.5)
MODE_LABELS = dict(
    learnable_ce='learnable W + CE',
    etf_ce='fixed ETF + CE',
    etf_dr='fixed ETF + DR',
    etf_ce_shared='fixed ETF + CE, shared layer',
    etf_dr_shared='fixed ETF + DR, shared layer')
# The minority means count as merged at this mean pairwise cosine.
COLLAPSE_LEVEL = 0.999


def counts_of(setting: dict) -> list:
    return [setting['n_major']] * setting['k_major'] + \
        [setting['n_minor']] * setting['k_minor']


def lam_star(setting: dict) -> float:
    return minority_collapse_threshold(setting['n_major'],
                                       setting['n_minor'],
                                       setting['k_major'],
                                       setting['k_minor'])


def simulate(setting: dict, ratio: float, mode: str, max_iter: int = 20000,
             grad_tol: float = 1e-8, seed: int = 0,
             convex: bool = True) -> dict:
    """Train one UFM at ``lam = ratio * lam*`` (``lambda_W = lambda_H =
    lam / 2``) and return its read-outs."""
    counts = counts_of(setting)
    lam = ratio * lam_star(setting)
    lambda_b = setting['lambda_b'] if mode == 'learnable_ce' else None
    start = time.time()
    result = train_ufm(counts, setting['dim'], lam / 2, lam / 2, mode=mode,
                       lambda_b=lambda_b, max_iter=max_iter,
                       grad_tol=grad_tol, seed=seed)
    metrics = ufm_collapse_metrics(result, counts)
    means = class_means(result['features'], result['labels'], len(counts))
    within = result['features'] - means[result['labels']]
    norms = means.norm(dim=1)
    minority = torch.tensor(counts) == min(counts)
    row = dict(
        ratio=ratio, lam=lam, mode=mode, seed=seed,
        minority_cos=metrics['mc_means_cos_few'],
        majority_cos=metrics.get('mc_means_cos_many', float('nan')),
        minority_w_cos=metrics['mc_w_cos_few'],
        wm_cos=metrics['wm_cos'], nc1=metrics['nc1'], nc3=metrics['nc3'],
        max_within_class_dev=within.norm(dim=1).max().item(),
        minority_norm_ratio=(norms[minority].mean() /
                             norms[~minority].mean()).item(),
        objective=result['objective'], grad_norm=result['grad_norm'],
        objective_change=result['objective_change'],
        iterations=result['iterations'], converged=result['converged'],
        seconds=time.time() - start)
    if convex and mode in ('learnable_ce', 'etf_ce_shared'):
        # The shared fixed-ETF problem is Hong & Ling's with lam / sqrt(s).
        k = len(counts)
        convex_lam = lam if mode == 'learnable_ce' else lam / math.sqrt(
            k / (k - 1))
        solution = solve_ufm_convex(counts, convex_lam,
                                    lambda_b=lambda_b)
        simulated = class_mean_logits(result['features'], result['labels'],
                                      result['classifier'])
        reference = solution['mean_logits']
        if mode == 'etf_ce_shared':  # CE cannot see a constant per row
            reference = reference - reference.mean(1, keepdim=True)
            simulated = simulated - simulated.mean(1, keepdim=True)
        row['convex_rel_diff'] = ((simulated - reference).norm() /
                                  reference.norm()).item()
    return row


def sweep(name: str, ratios: Sequence[float] = SWEEP_RATIOS,
          modes: Sequence[str] = ALL_MODES, max_iter: int = 20000,
          log=print) -> dict:
    """Every mode at every ``lam / lam*`` of ``ratios`` in a setting."""
    setting = SETTINGS[name]
    rows = []
    for ratio in ratios:
        for mode in modes:
            rows.append(simulate(setting, ratio, mode, max_iter=max_iter))
            r = rows[-1]
            log(f"[ufm {name}] lam/lam*={ratio:.2f} {mode:14s} minority cos "
                f"{r['minority_cos']:+.4f} grad {r['grad_norm']:.1e} "
                f"iters {r['iterations']} {r['seconds']:.1f}s")
    return dict(setting=name, **setting, class_counts=counts_of(setting),
                lam_star=lam_star(setting),
                shared_threshold=shared_etf_threshold(
                    setting['n_major'], setting['n_minor'],
                    setting['k_major'], setting['k_minor']),
                runs=rows)


def threshold_brackets(name: str = 'A', precision: float = 1e-3,
                       convex_precision: float = 1e-4,
                       max_iter: int = 50000, log=print) -> dict:
    """Bracket by bisection where the minority means merge: learnable W +
    CE simulated (L-BFGS) and from the convex program, and the fixed ETF
    with a shared layer simulated."""
    setting = SETTINGS[name]
    counts = counts_of(setting)
    star = lam_star(setting)
    minority = [k for k, n in enumerate(counts) if n == min(counts)]
    records = {}

    def simulated(mode):
        def collapsed(ratio):
            row = simulate(setting, ratio, mode, max_iter=max_iter,
                           convex=False)
            records.setdefault(mode, []).append(row)
            log(f'[ufm threshold {mode}] lam/lam*={ratio:.6f} minority cos '
                f"{row['minority_cos']:+.6f} grad {row['grad_norm']:.1e} "
                f"iters {row['iterations']} {row['seconds']:.0f}s")
            return row['minority_cos'] >= COLLAPSE_LEVEL
        return collapsed

    def convex_collapsed(ratio):
        z = solve_ufm_convex(counts, ratio * star,
                             lambda_b=setting['lambda_b'])['mean_logits']
        rows = z[minority]
        spread = (rows - rows.mean(0)).norm(dim=1).max() / z.norm(
            dim=1).max()
        records.setdefault('convex', []).append(
            dict(ratio=ratio, spread=spread.item()))
        return spread.item() <= 1e-4

    out = dict(setting=name, lam_star=star, level=COLLAPSE_LEVEL,
               precision=precision, convex_precision=convex_precision)
    out['learnable_ce'] = bisect_threshold(simulated('learnable_ce'), 0.98,
                                           1.02, precision)
    out['convex'] = bisect_threshold(convex_collapsed, 0.98, 1.02,
                                     convex_precision)
    shared = shared_etf_threshold(setting['n_major'], setting['n_minor'],
                                  setting['k_major'], setting['k_minor'])
    out['shared_prediction_ratio'] = shared / star
    out['etf_ce_shared'] = bisect_threshold(
        simulated('etf_ce_shared'), shared / star - 0.02,
        shared / star + 0.02, precision)
    out['records'] = records
    return out


RACE_COUNTS = [50] * 3 + [10] * 7
RACE_PENALTIES = (0.005, 0.05, 0.5)  # N * lambda_H
RACE_STEPS = (0.1, 0.5, 1.0)
RACE_SEEDS = (0, 1, 2, 3, 4)
RACE_TOL = 1e-3


def race(counts: Sequence[int] = RACE_COUNTS, dim: int = 16,
         penalties: Sequence[float] = RACE_PENALTIES,
         steps: Sequence[float] = RACE_STEPS,
         seeds: Sequence[int] = RACE_SEEDS, tol: float = RACE_TOL,
         max_steps: int = 20000, log=print) -> dict:
    """Gradient-descent steps to the optimum, fixed-ETF CE against DR, from
    the same start, over penalties, step sizes and seeds.

    The fixed-ETF UFM separates into one problem per sample whose
    per-sample dynamics depend on ``N lambda_H`` and the per-sample step
    only, so a small ``N`` gives the same race as a large one.
    """
    total = sum(counts)
    rows = []
    for penalty in penalties:
        for lr in steps:
            for seed in seeds:
                result = gradient_descent_race(
                    counts, dim, penalty / total, lr, tol=tol,
                    max_steps=max_steps, seed=seed, etf_seed=seed)
                rows.append(dict(penalty=penalty, lr=lr, seed=seed,
                                 **{f'{m}_steps': r['steps'] for m, r in
                                    result.items()},
                                 **{f'{m}_optimum_norm': r['optimum_norm']
                                    for m, r in result.items()}))
                log(f'[ufm race] N*lambda_H={penalty:g} lr={lr:g} seed='
                    f"{seed}: CE {rows[-1]['etf_ce_steps']} DR "
                    f"{rows[-1]['etf_dr_steps']} steps")
    return dict(class_counts=list(counts), dim=dim, tol=tol,
                max_steps=max_steps, runs=rows)


__all__ = ['SETTINGS', 'SWEEP_RATIOS', 'MODE_LABELS', 'COLLAPSE_LEVEL',
           'simulate', 'sweep', 'threshold_brackets', 'race', 'counts_of',
           'lam_star']
