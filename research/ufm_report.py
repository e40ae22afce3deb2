"""Render docs/results_ufm.md and its figures from the UFM data files
(``ufm_sweep_<setting>.json``, ``ufm_threshold.json``,
``ufm_convergence.json`` in docs/data, written by
``tools/analysis/ufm_simulation.py``)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from . import stats
from .pages import fill, template, write
from .ufm import ALL_MODES
from .ufm_study import MODE_LABELS

SIMPLEX = -1 / 9
UFM_FILES = dict(sweep_A='ufm_sweep_A.json', sweep_B='ufm_sweep_B.json',
                 threshold='ufm_threshold.json',
                 race='ufm_convergence.json')


def _load(data_dir: str, name: str):
    path = osp.join(data_dir, name)
    if not osp.exists(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def load_ufm(data_dir: str) -> dict:
    """Every UFM data file of ``data_dir``, read once: ``{'sweep_A',
    'sweep_B', 'threshold', 'race'}`` (None for a missing file) and
    ``'race_rows'``, the race's :func:`race_rows` (None without the race),
    so the pages that quote the same numbers bootstrap them once."""
    ufm = {key: _load(data_dir, name) for key, name in UFM_FILES.items()}
    ufm['race_rows'] = (None if ufm['race'] is None else
                        race_rows(ufm['race']))
    return ufm


def _at(runs: List[dict], mode: str) -> Dict[float, dict]:
    return {r['ratio']: r for r in runs if r['mode'] == mode}


def sweep_table(data: dict) -> str:
    runs = data['runs']
    modes = [m for m in ALL_MODES if _at(runs, m)]
    lines = ['| λ/λ* | ' + ' | '.join(MODE_LABELS[m] for m in modes) +
             ' | learnable: majority cos | learnable: minority/majority '
             'mean norm | shared DR: minority/majority mean norm | '
             'learnable vs convex | shared CE vs convex |',
             '|---' * (len(modes) + 6) + '|']
    shared_dr = _at(runs, 'etf_dr_shared')
    learnable, shared = _at(runs, 'learnable_ce'), _at(runs,
                                                       'etf_ce_shared')
    for ratio in sorted({r['ratio'] for r in runs}):
        cells = [f"{_at(runs, m)[ratio]['minority_cos']:+.4f}"
                 for m in modes]
        l = learnable[ratio]
        cells += [f"{l['majority_cos']:+.4f}",
                  f"{l['minority_norm_ratio']:.2g}",
                  f"{shared_dr[ratio]['minority_norm_ratio']:.2g}"
                  if ratio in shared_dr else '–',
                  f"{l.get('convex_rel_diff', float('nan')):.1e}",
                  f"{shared[ratio].get('convex_rel_diff', float('nan')):.1e}"
                  if ratio in shared else '–']
        lines.append(f'| {ratio:.2f} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def sweep_facts(data: dict) -> dict:
    runs = data['runs']
    facts = {}
    for mode in ('etf_ce', 'etf_dr'):
        facts[f'{mode}_dev'] = max(abs(r['minority_cos'] - SIMPLEX)
                                   for r in runs if r['mode'] == mode)
    learnable = [r for r in runs if r['mode'] == 'learnable_ce']
    facts['convex'] = max(r.get('convex_rel_diff', 0) for r in learnable)
    shared = [r for r in runs if r['mode'] == 'etf_ce_shared']
    facts['shared_convex'] = max(r.get('convex_rel_diff', 0)
                                 for r in shared) if shared else None
    facts['grad'] = max(r['grad_norm'] for r in runs)
    facts['converged'] = sum(r['converged'] for r in runs)
    facts['runs'] = len(runs)
    facts['iterations'] = max(r['iterations'] for r in runs)
    facts['max_dev'] = max(r['max_within_class_dev'] for r in learnable)
    facts['vanished'] = [r['ratio'] for r in learnable
                         if r['minority_norm_ratio'] < 1e-3]
    return facts


def setting_text(data: dict) -> str:
    bias = ('no bias' if data['lambda_b'] is None else
            f'a learnable bias with λ_b = {data["lambda_b"]:g}')
    n = sum(data['class_counts'])
    return (f'K = {len(data["class_counts"])}: {data["k_major"]} classes × '
            f'{data["n_major"]} + {data["k_minor"]} × {data["n_minor"]} '
            f'samples, d = {data["dim"]}, {bias}, λ_W = λ_H = λ/2; λ* = '
            f'√{data["n_minor"]}/{n} = {data["lam_star"]:.6f}; shared-layer '
            f'prediction √(K/(K−1)) λ* = {data["shared_threshold"]:.6f} '
            f'(= {data["shared_threshold"] / data["lam_star"]:.4f} λ*).')


def facts_text(data: dict) -> str:
    f = sweep_facts(data)
    shared = [r for r in data['runs'] if r['mode'] == 'etf_ce_shared']
    low = min(shared, key=lambda r: r['ratio']) if shared else None
    text = [
        f'- Fixed ETF, separable features: largest |minority cos − (−1/9)| '
        f'over the sweep {f["etf_ce_dev"]:.1e} (CE) and {f["etf_dr_dev"]:.1e}'
        f' (DR).',
        f'- Learnable W + CE against the convex program: largest relative '
        f'Frobenius difference of the mean logits {f["convex"]:.1e}.',
    ]
    if low is not None:
        text.append(
            f'- Fixed ETF + CE with a shared layer: minority cos '
            f'{low["minority_cos"]:+.4f} already at {low["ratio"]:.2f} λ* (the '
            f'simplex value is {SIMPLEX:+.4f}); its mean logits agree with '
            f'the convex program at λ/√(K/(K−1)) to {f["shared_convex"]:.1e}.')
    text.append(
        f'- Convergence of the sweep: {f["converged"]} of {f["runs"]} runs '
        f'reached a gradient norm below 1e-8 (largest final gradient norm '
        f'{f["grad"]:.1e}, at most {f["iterations"]} L-BFGS iterations); '
        f'the largest distance of a learnable-run sample from its class '
        f'mean is {f["max_dev"]:.1e}.')
    if f['vanished']:
        text.append(f'- Learnable: the minority means vanish (norm below '
                    f'1e-3 of the majority\'s, cosine undefined) at λ/λ* = '
                    f'{", ".join(f"{v:g}" for v in f["vanished"])}.')
        return '\n'.join(text) + (
            '\n\nWhere the learnable minority means have vanished their '
            'cosine is undefined\nand the number in the table is noise.')
    return '\n'.join(text)


def threshold_text(data: dict) -> str:
    if data is None:
        return '(threshold data missing)'
    lines = []
    for key, words in (('learnable_ce', 'learnable W + CE, simulated '
                        '(L-BFGS)'),
                       ('convex', 'learnable W + CE, convex program'),
                       ('etf_ce_shared', 'fixed ETF + CE with a shared '
                        'layer, simulated')):
        b = data[key]
        precision = data['convex_precision'] if key == 'convex' else data[
            'precision']
        lines.append(f'| {words} | [{b["lo"]:.5f}, {b["hi"]:.5f}] | '
                     f'{precision:g} | {len(b["steps"])} |')
        if key == 'etf_ce_shared':
            # The shared problem is the convex program at lam / sqrt(s).
            c, r = data['convex'], data['shared_prediction_ratio']
            lines.append(
                f'| fixed ETF + CE with a shared layer, convex program at '
                f'λ/√(K/(K−1)) (the bracket above × {r:.5f}) | '
                f'[{c["lo"] * r:.5f}, {c["hi"] * r:.5f}] | '
                f'{data["convex_precision"] * r:.2g} | – |')
    records = data.get('records', {})
    unconverged = sum(not r['converged'] for rs in records.values()
                      for r in rs if 'converged' in r)
    worst = max((r['grad_norm'] for rs in records.values() for r in rs
                 if 'grad_norm' in r), default=float('nan'))
    # Where each simulated bracket lies relative to its prediction.
    offsets = {}
    for key, words, prediction in (
            ('learnable_ce', 'learnable', 1.0),
            ('etf_ce_shared', 'shared-layer',
             data['shared_prediction_ratio'])):
        offsets[words] = (data[key]['lo'] - prediction,
                          data[key]['hi'] - prediction)
    within = max(abs(v) for pair in offsets.values() for v in pair)
    below = [words for words, (_, hi) in offsets.items() if hi < 0]
    position = (
        f'Each simulated bracket lies within {within:.5f} of its prediction '
        f'(bracket minus prediction: ' + ', '.join(
            f'{words} [{lo:+.5f}, {hi:+.5f}]'
            for words, (lo, hi) in offsets.items()) + ').')
    if below:
        position += (
            f' The {" and ".join(below)} bracket'
            f'{"s lie" if len(below) > 1 else " lies"} below its '
            f'prediction: the criterion (cosine {data["level"]:g}) is met '
            f'just before the means coincide, so a simulated bracket can sit '
            f'below the exact merging point.')
    return (
        '| what | bracket of λ/λ* | bisection precision | evaluations |\n'
        '|---|---|---|---|\n' + '\n'.join(lines) +
        f'\n\nCriterion: simulated runs count as collapsed when the mean '
        f'pairwise cosine of the minority class means reaches '
        f'{data["level"]:g}; the convex program when its minority mean-logit '
        f'rows coincide to 1e-4 of the largest row norm. Predictions: '
        f'λ/λ* = 1 (learnable) and {data["shared_prediction_ratio"]:.5f} '
        f'(shared layer). {position} Near the threshold L-BFGS slows down: '
        f'{unconverged} bisection runs stopped at their iteration budget '
        f'(largest final gradient norm {worst:.1e}).')


def race_rows(data: dict) -> List[dict]:
    out = []
    runs = data['runs']
    for penalty in sorted({r['penalty'] for r in runs}):
        for lr in sorted({r['lr'] for r in runs}):
            group = [r for r in runs if r['penalty'] == penalty and
                     r['lr'] == lr]
            ce = [r['etf_ce_steps'] for r in group]
            dr = [r['etf_dr_steps'] for r in group]
            row = dict(penalty=penalty, lr=lr, n=len(group),
                       ce=ce, dr=dr)
            if None not in ce and None not in dr:
                row['diff'] = stats.paired_bootstrap(dr, ce, n_boot=10000)
            out.append(row)
    return out


def _steps(values) -> str:
    done = [v for v in values if v is not None]
    missing = len(values) - len(done)
    text = (f'{np.mean(done):.0f} ± {np.std(done, ddof=1):.0f}'
            if len(done) > 1 else (f'{done[0]}' if done else '–'))
    return text + (f' ({missing} not reached)' if missing else '')


def _race_verdict(diff: dict) -> str:
    """The verdict on a DR − CE difference of steps."""
    return stats.verdict(diff, higher='CE faster', lower='DR faster')


def race_table(data: dict, rows: Optional[List[dict]] = None) -> str:
    """``rows``: :func:`race_rows` of ``data`` when already computed."""
    if data is None:
        return '(race data missing)'
    lines = ['| N·λ_H | step per sample | CE steps | DR steps | DR − CE '
             '[95 % CI over seeds] | verdict |', '|---|---|---|---|---|---|']
    for row in race_rows(data) if rows is None else rows:
        if 'diff' in row:
            d = row['diff']
            ci = (f'{d["mean"]:+.0f} [{d["lo"]:+.0f}, {d["hi"]:+.0f}] '
                  f'(n = {d["n"]})')
            verdict = _race_verdict(d)
        else:
            ci, verdict = '–', 'a loss did not reach the tolerance'
        lines.append(f'| {row["penalty"]:g} | {row["lr"]:g} | '
                     f'{_steps(row["ce"])} | {_steps(row["dr"])} | {ci} | '
                     f'{verdict} |')
    return '\n'.join(lines)


def race_summary(data: dict, rows: Optional[List[dict]] = None) -> str:
    """One sentence: how the race came out, counted over the grid
    (``rows``: :func:`race_rows` of ``data`` when already computed)."""
    if data is None:
        return '(race data missing)'
    if rows is None:
        rows = race_rows(data)
    verdicts = {'DR faster': 0, 'CE faster': 0, 'not resolved': 0}
    unfinished = 0
    for row in rows:
        if 'diff' not in row:
            unfinished += 1
            continue
        verdicts[_race_verdict(row['diff'])] += 1
    return (f'plain gradient descent from the same start, fixed ETF, steps '
            f'until the features are within {data["tol"]:g} (relative '
            f'Frobenius distance) of each loss\'s own optimum, over '
            f'{len(rows)} (penalty, step) settings × '
            f'{rows[0]["n"]} seeds: CE faster in {verdicts["CE faster"]}, '
            f'DR faster in {verdicts["DR faster"]}, not resolved in '
            f'{verdicts["not resolved"]}, and in {unfinished} a loss did not '
            f'reach the tolerance within {data["max_steps"]} steps '
            f'(details: [results_ufm.md](results_ufm.md)).')


def ufm_summary(data_dir: str, ufm: Optional[dict] = None) -> str:
    """The paragraph of results.md's UFM section (``ufm``:
    :func:`load_ufm` of ``data_dir`` when already read)."""
    if ufm is None:
        ufm = load_ufm(data_dir)
    sweep, threshold = ufm['sweep_A'], ufm['threshold']
    if sweep is None:
        return '(UFM data missing)'
    f = sweep_facts(sweep)
    text = [f'Setting A: {setting_text(sweep)}', '']
    if threshold is not None:
        b, c, s = (threshold['learnable_ce'], threshold['convex'],
                   threshold['etf_ce_shared'])
        text.append(
            f'- Learnable W + CE: the minority class means merge at λ/λ* in '
            f'[{b["lo"]:.4f}, {b["hi"]:.4f}] (simulated, bisection) and '
            f'[{c["lo"]:.5f}, {c["hi"]:.5f}] (convex program), against the '
            f'predicted 1. λ* = √n_B/N is our derivation (research notes '
            f'E3), consistent with Hong & Ling\'s sweeps, not a theorem '
            f'quoted from their paper.')
        text.append(
            f'- Fixed ETF, separable features (one free feature per sample):'
            f' the minority cosine stays at −1/9 on both sides (largest '
            f'deviation {f["etf_ce_dev"]:.1e} with CE, {f["etf_dr_dev"]:.1e} '
            f'with DR). This immunity is a consequence of separability.')
        text.append(
            f'- Fixed ETF + CE with the features shared through a learnable '
            f'layer: the minority means merge too, at λ/λ* in '
            f'[{s["lo"]:.4f}, {s["hi"]:.4f}] (our prediction '
            f'{threshold["shared_prediction_ratio"]:.4f}); a fixed classifier '
            f'alone does not prevent minority collapse once the features are '
            f'coupled.')
    race = ufm['race']
    if race is not None:
        text.append(f'- Convergence under the same fixed ETF: '
                    f'{race_summary(race, ufm["race_rows"])}')
    return '\n'.join(text)


def sweep_figure(data: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    runs = data['runs']
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    styles = dict(learnable_ce=dict(marker='o', ls='-'),
                  etf_ce=dict(marker='s', ls='-', markersize=9,
                              fillstyle='none'),
                  etf_dr=dict(marker='x', ls='--', markersize=5),
                  etf_ce_shared=dict(marker='^', ls='-.'),
                  etf_dr_shared=dict(marker='v', ls=':'))
    for mode in ALL_MODES:
        points = sorted(_at(runs, mode).items())
        if not points:
            continue
        ax.plot([p[0] for p in points], [p[1]['minority_cos']
                                         for p in points],
                label=MODE_LABELS[mode], **styles[mode])
    ax.axvline(1.0, color='k', lw=0.8, ls='--',
               label='λ* (learnable prediction)')
    ax.axvline(data['shared_threshold'] / data['lam_star'], color='gray',
               lw=0.8, ls=':', label='√(K/(K−1)) λ* (shared prediction)')
    ax.axhline(SIMPLEX, color='gray', lw=0.6)
    ax.set_xlabel('λ / λ*,  λ = 2√(λ_W λ_H)')
    ax.set_ylabel('mean pairwise cosine of the minority class means')
    ax.set_title(f'setting {data["setting"]}; one run per point (the '
                 f'optimum is unique)', fontsize=9)
    ax = axes[1]
    for mode in ('etf_ce', 'etf_dr'):
        points = sorted(_at(runs, mode).items())
        ax.semilogy([p[0] for p in points],
                    [max(abs(p[1]['minority_cos'] - SIMPLEX), 1e-17)
                     for p in points], label=MODE_LABELS[mode],
                    **styles[mode])
    ax.set_xlabel('λ / λ*')
    ax.set_ylabel('|minority cos − (−1/9)|, fixed ETF, separable')
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=4, fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def race_figure(data: dict, path: str,
                rows: Optional[List[dict]] = None) -> None:
    """``rows``: :func:`race_rows` of ``data`` when already computed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if rows is None:
        rows = race_rows(data)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    penalties = sorted({r['penalty'] for r in rows})
    markers = ['o', 's', '^']
    for i, penalty in enumerate(penalties):
        for loss, ls in (('ce', '-'), ('dr', '--')):
            xs, means, sds = [], [], []
            for r in rows:
                values = [v for v in r[loss] if v is not None]
                if r['penalty'] != penalty or len(values) < len(r[loss]):
                    continue
                xs.append(r['lr'])
                means.append(np.mean(values))
                sds.append(np.std(values, ddof=1))
            if xs:
                ax.errorbar(np.array(xs) * (1 + 0.03 * (loss == 'dr')),
                            means, yerr=sds, ls=ls, marker=markers[i],
                            capsize=3, label=f'fixed ETF + {loss.upper()}, '
                            f'N·λ_H = {penalty:g} (n = {rows[0]["n"]} '
                            f'seeds)')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('gradient-descent step per sample')
    ax.set_ylabel(f'steps to within {data["tol"]:g} of the optimum '
                  f'(mean ± std)')
    ax.legend(loc='center left', bbox_to_anchor=(1.02, 0.5), fontsize=8,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def render_ufm(data_dir: str, docs_dir: str,
               ufm: Optional[dict] = None) -> None:
    """Write results_ufm.md and its figures (``ufm``: :func:`load_ufm` of
    ``data_dir`` when already read)."""
    if ufm is None:
        ufm = load_ufm(data_dir)
    figures = osp.join(docs_dir, 'figures')
    os.makedirs(figures, exist_ok=True)
    blocks = {}
    for name in ('A', 'B'):
        data = ufm[f'sweep_{name}']
        if data is None:
            blocks[f'setting_{name}'] = blocks[f'table_{name}'] = \
                blocks[f'facts_{name}'] = blocks[f'wall_{name}'] = \
                f'(ufm_sweep_{name}.json missing)'
            continue
        blocks[f'setting_{name}'] = setting_text(data)
        blocks[f'table_{name}'] = sweep_table(data)
        blocks[f'facts_{name}'] = facts_text(data)
        blocks[f'wall_{name}'] = f'{data.get("wall_seconds", 0):.0f} s'
        sweep_figure(data, osp.join(figures, f'ufm_sweep_{name}.png'))
    race, rows = ufm['race'], ufm['race_rows']
    blocks['threshold'] = threshold_text(ufm['threshold'])
    blocks['race_table'] = race_table(race, rows)
    blocks['race_summary'] = race_summary(race, rows)
    blocks['race_setting'] = (
        f'K = {len(race["class_counts"])} ({", ".join(map(str, sorted(set(race["class_counts"]), reverse=True)))} '
        f'samples per class), d = {race["dim"]}' if race else '')
    if race is not None:
        race_figure(race, osp.join(figures, 'ufm_convergence.png'), rows)
    write(osp.join(docs_dir, 'results_ufm.md'),
           fill(template('results_ufm.md'), blocks))
