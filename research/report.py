"""Render docs/results.md, docs/baselines.md and their figures from the
digits study's per-run file (and docs/results_ufm.md from the UFM files).

Nothing on the generated pages is typed by hand: the prose lives in
``templates/*.md``, and every number, table and figure, and every sentence
that states a comparison, is computed here from the per-run files, so
rerunning the study and :func:`render_all` rewrites the pages consistently.
A comparison is worded by its 95 % interval: "higher" or "lower" only when
the interval excludes zero, "not resolved" otherwise.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from etf_plugin.functional.long_tail import shot_groups

from . import stats
from .pages import fill, template, write
from .study import (EVAL_SEEDS, FEW_THR, HELDOUT_PER_CLASS, LA_FAMILY,
                    LA_TUNING_SEEDS, MANY_THR, METHODS, PERM_METHODS,
                    PERM_RATIO, RECIPE_CANDIDATES, REPO, TUNING_RATIO,
                    TUNING_SEEDS, VAL_INTERVAL,
                    choose_knobs, is_stale, load_rows, nc_groups,
                    select_recipe)
from .ufm_report import (_load, load_ufm, race_summary, render_ufm,
                         ufm_summary)

SIMPLEX_COS = -1 / 9
# "Keeps the simplex angle": the 95 % interval of the tail-half class
# means' mean pairwise cosine lies within this of -1/(K-1).
SIMPLEX_TOLERANCE = 0.05
# Convergence to the fixed-ETF optimum on digits: the first epoch with the
# training class means within 1 - cos of their class vectors.
ALIGNMENT_TOLERANCES = (0.3, 0.2, 0.1)
N_BOOT = 10000
BASELINES = ('ce', 'la', 'la_default', 'posthoc_la', 'tau_norm', 'crt')
CONTROLS = (
    ('etf_ce', 'cosine_ce', 'fixing the classifier (same neck, scale, loss '
     'and starting rows)'),
    ('cosine_ce', 'ce', 'the BN + L2 neck and logit scale (both learnable)'),
    ('etf_dr_cb', 'ce_cb', 'fixed ETF + DR against learnable linear + CE, '
     'both with the per-batch class-balanced weights'),
    ('ce_cb', 'ce', 'the per-batch class-balanced weights on learnable '
     'linear + CE'),
    ('etf_dr_cb', 'etf_dr', 'the per-batch class-balanced weights on ETF + '
     'DR'),
    ('etf_dr', 'etf_ce', 'DR against CE under the same fixed ETF'),
    ('etf_la', 'la', 'fixed ETF against learnable linear, both with '
     'logit-adjusted CE'),
)
# The logit-adjusted arms, tuned alike (issue 24): what the recipe's gain
# over logit adjustment comes from.
LA_CONTROLS = (
    ('etf_la', 'cosine_la', 'fixing the class vectors (same BN + L2 neck, '
     'scale 10, ETF start and loss)'),
    ('cosine_la', 'la', 'the BN + L2 neck, scale 10 and ETF start (class '
     'vectors learnable in both)'),
    ('etf_la', 'la', 'everything: the recipe against the best-tuned '
     'logit adjustment'),
    ('etf_la', 'la_default', 'the recipe against the shipped '
     '`configs/resnet32_digitslt_la.py` (τ = 1, not tuned)'),
)
# Where the prototype-contrast loss lands (issue 24.6).
PC_CONTROLS = (
    ('etf_pc', 'etf_dr_cb', 'the loss under the same fixed ETF: '
     'prototype contrast against class-balanced DR (the main job)'),
    ('etf_pc', 'cosine_pc', 'fixing the prototypes (same neck, loss)'),
    ('cosine_pc', 'ce', 'learnable normalised prototypes + prototype '
     'contrast against learnable linear + CE'),
    ('etf_pc', 'ce', 'fixed ETF + prototype contrast against learnable '
     'linear + CE'),
    ('cosine_pc', 'cosine_la', 'the loss on the same learnable cosine '
     'head: prototype contrast against logit-adjusted CE'),
    ('etf_pc', 'etf_la', 'the loss under the same fixed ETF: prototype '
     'contrast against logit-adjusted CE (the recipe)'),
    ('etf_pc_posthoc', 'etf_pc', 'post-hoc logit adjustment of the fixed-'
     'ETF prototype-contrast model (τ chosen per run on held-out data)'),
    ('cosine_pc_posthoc', 'cosine_pc', 'post-hoc logit adjustment of the '
     'learnable-prototype model'),
    ('etf_pc_posthoc', 'posthoc_la', 'prototype contrast on the fixed ETF '
     'against CE on a learnable linear head, both adjusted post hoc'),
    ('etf_pc_posthoc', 'etf_la', 'post-hoc against training-time logit '
     'adjustment on the fixed ETF (prototype contrast against logit-'
     'adjusted CE)'),
)
# The comparisons repeated with a class order drawn from each seed (issue
# 24.5).
PERM_CONTROLS = LA_CONTROLS[:3] + (
    ('la', 'ce', 'logit adjustment on the learnable linear head'),
    ('etf_dr_cb', 'ce', 'fixed ETF + class-balanced DR against CE'),
    ('etf_la', 'etf_dr_cb', 'logit-adjusted CE against class-balanced DR, '
     'both on the fixed ETF'),
)
GROUP_WORDS = (('top1', 'top-1'), ('many', 'many-shot'), ('few', 'few-shot'))
# The arms whose configs are in the model zoo (configs/etf/README.md) or
# are the LA baselines and control it is compared with.
ZOO_ARMS = ('etf_dr_cb', 'etf_dr_q', 'etf_la', 'cosine_la', 'la',
            'la_default')


# --------------------------------------------------------------------------
# Reading the study


class DigitsStudy:
    """The evaluation runs of a per-run file, with the tuning applied.

    Rows that no longer describe the code (:func:`~.study.is_stale`) are
    never mixed with current ones: a method at a ratio uses its current rows
    if it has any, else its stale ones, listed in :attr:`stale`.

    Args:
        rows (list[dict]): Rows of the per-run file.
        phase (str): The evaluation runs to read: ``'eval'`` (the natural
            class order) or ``'perm'`` (class orders drawn from the seeds,
            so each seed has its own shot groups). Defaults to ``'eval'``.
    """

    def __init__(self, rows: List[dict], phase: str = 'eval'):
        self.rows = rows
        self.phase = phase
        self.chosen = choose_knobs(rows)
        self.recipe = select_recipe(rows)
        latest = {}
        for row in rows:
            latest[row['id']] = row
        evals = [r for r in latest.values() if r['phase'] == phase]
        current = {(r['method'], r['ratio']) for r in evals
                   if not is_stale(r)}
        self.eval_rows = [r for r in evals if not is_stale(r)
                          or (r['method'], r['ratio']) not in current]
        self.stale = sorted({(r['method'], r['ratio'])
                             for r in self.eval_rows if is_stale(r)},
                            key=lambda k: (k[1], list(METHODS).index(k[0])))
        self._compared = {}

    def is_stale(self, method: str, ratio: float) -> bool:
        return (method, ratio) in self.stale

    def runs(self, method: str, ratio: float) -> Dict[int, dict]:
        """``{seed: row}`` of a method at a ratio (a tuned method at its
        chosen knob only)."""
        knob = METHODS[method].knob
        found = {}
        for row in self.eval_rows:
            if row['method'] != method or row['ratio'] != ratio:
                continue
            if knob is not None and knob.stage == 'train':
                if method not in self.chosen or row['knobs'].get(
                        knob.key) != self.chosen[method]['value']:
                    continue
            found[row['seed']] = row
        return dict(sorted(found.items()))

    def ratios(self) -> List[float]:
        return sorted({r['ratio'] for r in self.eval_rows})

    def methods(self, ratio: float) -> List[str]:
        return [m for m in METHODS if self.runs(m, ratio)]

    def counts(self, ratio: float) -> List[int]:
        for row in self.eval_rows:
            if row['ratio'] == ratio:
                return row['class_counts']
        raise KeyError(ratio)

    def few_classes(self, ratio: float) -> List[int]:
        return shot_groups(self.counts(ratio), MANY_THR,
                           FEW_THR)['few'].tolist()

    def values(self, method: str, ratio: float, metric: str) -> np.ndarray:
        return np.array([r['test'].get(metric, np.nan)
                         for r in self.runs(method, ratio).values()])

    def compare(self, a: str, b: str, ratio: float,
                metric: str) -> Optional[dict]:
        """Paired difference ``a - b`` of ``metric`` ('top1' or a shot
        group: 'many', 'medium', 'few') over
        the seeds both have: ``{'images': CI over seeds and test images,
        'seeds': CI over seeds}``; None without common seeds or classes.

        Each comparison is bootstrapped once per instance and the same dict
        returned on every later call: do not modify it."""
        key = (a, b, ratio, metric)
        if key not in self._compared:
            self._compared[key] = self._compare(a, b, ratio, metric)
        return self._compared[key]

    def _compare(self, a: str, b: str, ratio: float,
                 metric: str) -> Optional[dict]:
        runs_a, runs_b = self.runs(a, ratio), self.runs(b, ratio)
        seeds = sorted(set(runs_a) & set(runs_b))
        if not seeds:
            return None
        classes = class_mask = None
        if metric in ('many', 'medium', 'few'):
            counts = [runs_a[s]['class_counts'] for s in seeds]
            if any(runs_b[s]['class_counts'] != c
                   for s, c in zip(seeds, counts)):
                raise ValueError(f'{a} and {b} at ratio {ratio:g} have '
                                 f'other training sets at the same seed.')
            if all(c == counts[0] for c in counts):
                classes = shot_groups(counts[0], MANY_THR,
                                      FEW_THR)[metric].tolist()
                if not classes:
                    return None
            else:  # each seed its own shot groups (permuted class orders)
                class_mask = np.zeros((len(seeds), len(counts[0])), bool)
                for i, c in enumerate(counts):
                    class_mask[i, shot_groups(c, MANY_THR,
                                              FEW_THR)[metric]] = True
                if not class_mask.any(axis=1).all():
                    return None
        gt = stats.decode_labels(runs_a[seeds[0]]['test']['gt'])
        pred_a = np.stack([stats.decode_labels(runs_a[s]['test']['pred'])
                           for s in seeds])
        pred_b = np.stack([stats.decode_labels(runs_b[s]['test']['pred'])
                           for s in seeds])
        values_a = np.array([runs_a[s]['test'][metric] for s in seeds])
        values_b = np.array([runs_b[s]['test'][metric] for s in seeds])
        return dict(
            images=stats.paired_bootstrap_images(
                pred_a, pred_b, gt, classes, n_boot=N_BOOT,
                class_mask=class_mask),
            seeds=stats.paired_bootstrap(values_a, values_b, n_boot=N_BOOT),
            seeds_list=seeds)


def _mean_sd(values, digits: int = 1) -> str:
    """``'mean ± sd'`` of the values that are neither None nor NaN."""
    values = np.asarray([v for v in values if v is not None],
                        dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    return f'{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}'


def _ci_cell(ci: Optional[dict], key: str = 'images') -> str:
    if ci is None:
        return '–'
    return stats.format_ci(ci[key])


def _verdict_words(ci: dict) -> str:
    verdict = stats.verdict(ci)
    if verdict == 'not resolved':
        return 'not resolved (the interval contains 0)'
    return f'{verdict} (the interval excludes 0)'


def _number_words(n: int) -> str:
    """``3`` -> ``'three'`` (zero to ten; digits beyond)."""
    words = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
             'eight', 'nine', 'ten')
    return words[n] if 0 <= n < len(words) else str(n)


def _label(method: str) -> str:
    return METHODS[method].label


def _mark(study: DigitsStudy, method: str, ratio: float) -> str:
    """' †' after a method whose rows at ``ratio`` are stale."""
    return ' †' if study.is_stale(method, ratio) else ''


def _knob_note(study: DigitsStudy, method: str) -> str:
    knob = METHODS[method].knob
    if knob is None:
        return ''
    if knob.stage == 'train':
        if method in study.chosen:
            return f' ({knob.symbol} = {study.chosen[method]["value"]:g})'
        return ''
    return f' ({knob.symbol} per seed)'


# --------------------------------------------------------------------------
# Tables


def setup_block(study: DigitsStudy) -> str:
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs/resnet32_digitslt_etf.py'))
    optim = cfg.optim_wrapper.optimizer
    lines = []
    for ratio in study.ratios():
        counts = study.counts(ratio)
        seeds = sorted({s for m in study.methods(ratio)
                        for s in study.runs(m, ratio)})
        lines.append(
            f'| {ratio:g} | {sum(counts)} | {", ".join(map(str, counts))} | '
            f'{len(seeds)} ({seeds[0]}–{seeds[-1]}) | '
            f'{nc_groups(counts):g} |')
    table = '\n'.join([
        '| imbalance ratio | training images | per class (class 0 … 9) | '
        'evaluation seeds | NC head/tail split at |', '|---|---|---|---|---|'
    ] + lines)
    return (
        f'{table}\n\nSchedule (every arm): SGD lr {optim.lr:g}, momentum '
        f'{optim.momentum:g}, weight decay {optim.weight_decay:g}, batch '
        f'{cfg.train_dataloader.batch_size}, {cfg.train_cfg.max_epochs} '
        f'cosine epochs (cRT: its own 10), test accuracy every '
        f'{VAL_INTERVAL} epochs, the last epoch reported (no best-epoch '
        f'selection). Shot groups for accuracy: many > {MANY_THR}, few < '
        f'{FEW_THR} training images. Held-out split: up to '
        f'{HELDOUT_PER_CLASS} images per class of the training split that '
        f'the long-tailed subset left out.')


def methods_block(study: DigitsStudy) -> str:
    lines = ['| name | method | config | chosen on held-out data |',
             '|---|---|---|---|']
    for name, method in METHODS.items():
        knob = method.knob
        if knob is None:
            tuned = '–'
        elif knob.stage == 'train':
            value = study.chosen.get(name, {}).get('value')
            tuned = (f'{knob.symbol} ∈ {{{", ".join(f"{v:g}" for v in knob.values)}}}'
                     f' on the tuning seeds: {knob.symbol} = '
                     + ('(pending)' if value is None else f'{value:g}'))
        else:
            tuned = (f'{knob.symbol} ∈ {{{", ".join(f"{v:g}" for v in knob.values)}}}'
                     f', per run on its own held-out images')
        lines.append(f'| `{name}` | {method.label} | `{method.config}` | '
                     f'{tuned} |')
    return '\n'.join(lines)


def tuning_block(study: DigitsStudy) -> str:
    out = []
    for name, choice in study.chosen.items():
        cells = ', '.join(
            f'{choice["symbol"]} = {t["value"]:g}: {t["macro"]:.1f} ± '
            f'{t["sd"]:.1f}' for t in choice['table'])
        values = [t['value'] for t in choice['table']]
        edge = (' (at the edge of the grid: a value beyond it was not '
                'tried)' if choice['value'] in (values[0], values[-1])
                else '')
        out.append(f'- `{name}` ({_label(name)}): {cells} → '
                   f'**{choice["symbol"]} = {choice["value"]:g}**{edge}')
    if study.recipe is not None:
        cells = ', '.join(f'`{t["method"]}` {t["macro"]:.1f} ± {t["sd"]:.1f}'
                          for t in study.recipe['table'])
        out.append(f'- ETF recipe among {", ".join(f"`{m}`" for m in RECIPE_CANDIDATES)}'
                   f' (tuned ones at their chosen knob): {cells} → '
                   f'**`{study.recipe["method"]}`**')
    for name in ('posthoc_la', 'tau_norm'):
        chosen = [r['knobs'][METHODS[name].knob.key]
                  for ratio in study.ratios()
                  for r in study.runs(name, ratio).values()]
        if chosen:
            values, counts = np.unique(chosen, return_counts=True)
            out.append(f'- `{name}`: {METHODS[name].knob.symbol} chosen per '
                       f'run: ' + ', '.join(f'{v:g} ({c}×)' for v, c in
                                            zip(values, counts)))
    return '\n'.join(out) if out else '(no tuning runs yet)'


def main_table(study: DigitsStudy, ratio: float) -> str:
    lines = [
        '| method | n | top-1 | few | Δ top-1 vs CE | Δ few vs CE | '
        'Δ top-1 vs LA | Δ few vs LA |', '|---|---|---|---|---|---|---|---|'
    ]
    for method in study.methods(ratio):
        runs = study.runs(method, ratio)
        cells = [
            f'{_label(method)}{_knob_note(study, method)}'
            f'{_mark(study, method, ratio)}', str(len(runs)),
            _mean_sd(study.values(method, ratio, 'top1')),
            _mean_sd(study.values(method, ratio, 'few'))
        ]
        for ref in ('ce', 'la'):
            for metric in ('top1', 'few'):
                ci = None if method == ref else study.compare(
                    method, ref, ratio, metric)
                cells.append(_ci_cell(ci))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def groups_table(study: DigitsStudy, ratio: float) -> str:
    lines = ['| method | many | medium | few | held-out balanced accuracy |',
             '|---|---|---|---|---|']
    for method in study.methods(ratio):
        runs = study.runs(method, ratio).values()
        lines.append(
            f'| {_label(method)}{_mark(study, method, ratio)} | '
            + ' | '.join(_mean_sd([r['test'].get(g, np.nan) for r in runs])
                         for g in ('many', 'medium', 'few'))
            + f' | {_mean_sd([r["heldout"]["macro"] for r in runs])} |')
    return '\n'.join(lines)


def goal_block(study: DigitsStudy) -> str:
    if study.recipe is None:
        return 'The ETF recipe is not chosen yet (tuning runs missing).'
    recipe = study.recipe['method']
    ratio = TUNING_RATIO
    lines = []
    results = {}
    for metric, words in (('top1', 'top-1'), ('few', 'few-shot')):
        ci = study.compare(recipe, 'la', ratio, metric)
        if ci is None:
            return f'`{recipe}` or `la` has no runs at ratio {ratio:g} yet.'
        results[metric] = ci
        lines.append(
            f'- {words}: {stats.format_ci(ci["images"])} points (seeds and '
            f'test images resampled; seeds only: '
            f'{stats.format_ci(ci["seeds"])}), n = {ci["images"]["n"]} '
            f'seeds, {ci["images"]["wins"]} wins / {ci["images"]["losses"]} '
            f'losses: {_verdict_words(ci["images"])}.')
    default = study.compare(recipe, 'la_default', ratio, 'top1')
    caveat = ''
    if default is not None:
        few = study.compare(recipe, 'la_default', ratio, 'few')
        lines.append(
            f'- against the shipped LA config (logit-adjusted CE at the '
            f'paper\'s untuned τ = 1, `la_default`'
            f'{_mark(study, "la_default", ratio)}): top-1 '
            f'{stats.format_ci(default["images"])}, few-shot '
            f'{stats.format_ci(few["images"])} points: '
            f'{stats.verdict(default["images"])} / '
            f'{stats.verdict(few["images"])}.')
        default_verdicts = {stats.verdict(default['images']),
                            stats.verdict(few['images'])}
    cos = [r['nc']['normalized'].get('mc_means_cos_few')
           for r in study.runs(recipe, ratio).values()]
    cos = np.array([c for c in cos if c is not None])
    boot = stats.paired_bootstrap(cos, np.zeros_like(cos), n_boot=N_BOOT)
    keeps = (boot['lo'] >= SIMPLEX_COS - SIMPLEX_TOLERANCE
             and boot['hi'] <= SIMPLEX_COS + SIMPLEX_TOLERANCE)
    lines.append(
        f'- tail-half class means (normalised features): mean pairwise '
        f'cosine {boot["mean"]:+.3f} [{boot["lo"]:+.3f}, {boot["hi"]:+.3f}] '
        f'(simplex value {SIMPLEX_COS:+.3f}; tolerance ±{SIMPLEX_TOLERANCE:g}'
        f'): {"keeps" if keeps else "does not keep"} the simplex angle.')
    reached = (results['top1']['images']['lo'] > 0
               and results['few']['images']['lo'] > 0 and keeps)
    permuted = DigitsStudy(study.rows, phase='perm')
    moved = {m: permuted.compare(recipe, 'la', ratio, m)
             for m in ('top1', 'few')}
    verdict = 'reached' if reached else 'not reached'
    if moved['top1'] is not None and moved['few'] is not None:
        holds = all(ci['images']['lo'] > 0 for ci in moved.values())
        lines.append(
            f'- with the tail digits drawn from each seed (permuted class '
            f'orders, {moved["top1"]["images"]["n"]} seeds; see "Which '
            f'digits form the tail"): top-1 '
            f'{stats.format_ci(moved["top1"]["images"])}, few-shot '
            f'{stats.format_ci(moved["few"]["images"])} points: '
            f'{stats.verdict(moved["top1"]["images"])} / '
            f'{stats.verdict(moved["few"]["images"])}; the goal\'s '
            f'accuracy condition {"holds" if holds else "does not hold"} '
            f'there, so the verdict above '
            f'{"does not depend" if holds else "depends"} on which digits '
            f'are rare.')
        if reached and not holds:
            verdict = (f'reached with the natural order\'s few-shot '
                       f'digits ({", ".join(map(str, study.few_classes(ratio)))}'
                       f'), not with the tail drawn from each seed')
    if default is not None:
        caveat = _default_caveat(study, reached, default_verdicts)
    head = (f'**Goal {verdict}.** The ETF '
            f'recipe chosen on held-out data, `{recipe}` ({_label(recipe)}'
            f'{_knob_note(study, recipe)}), against learnable linear + '
            f'logit-adjusted CE{_knob_note(study, "la")}'
            f'{_mark(study, "la", ratio)} at ratio {ratio:g}, '
            f'paired per seed:')
    return head + '\n\n' + '\n'.join(lines) + caveat


def _default_caveat(study: DigitsStudy, reached: bool,
                    default_verdicts: set) -> str:
    """What the untuned shipped LA config (``la_default``) adds to the
    goal's verdict against the held-out-tuned ``la``."""
    la_tau = study.chosen.get('la', {}).get('value')
    text = ''
    if la_tau == 1.0:
        la = study.runs('la', TUNING_RATIO)
        default = study.runs('la_default', TUNING_RATIO)
        seeds = sorted(set(la) & set(default))
        same = sum(la[s]['test'] == default[s]['test'] for s in seeds)
        text = (f' The held-out choice for `la` is τ = 1, the shipped '
                f'config\'s value: `la` and `la_default` are the same '
                f'training; at ratio {TUNING_RATIO:g} their rows, written by '
                f'different invocations, agree in {same} of {len(seeds)} '
                f'seeds.')
    elif reached and default_verdicts != {'higher'}:
        text = (' The goal holds against the held-out-tuned baseline but '
                'not against the shipped τ = 1 config: the held-out choice '
                f'of the baseline\'s τ, on '
                f'{_number_words(len(LA_TUNING_SEEDS))} tuning seeds, '
                f'decides part of the margin.')
    return (f'\n\n**The shipped LA config.**{text} The `la_default` arm was '
            f'added after the first evaluation results had been seen, as a '
            f'sensitivity check; it is not part of the pre-registered '
            f'comparison.')


def claims_block(study: DigitsStudy) -> str:
    """One sentence per comparison of interest, worded by its interval."""
    out = []
    for ratio in study.ratios():
        for ref in ('ce', 'la'):
            better, worse, unresolved = [], [], []
            for method in study.methods(ratio):
                if method == ref:
                    continue
                ci = study.compare(method, ref, ratio, 'top1')
                if ci is None:
                    continue
                entry = (f'`{method}`{_mark(study, method, ratio)} '
                         f'{stats.format_ci(ci["images"])}')
                verdict = stats.verdict(ci['images'])
                {'higher': better, 'lower': worse}.get(
                    verdict, unresolved).append(entry)
            out.append(
                f'- ratio {ratio:g}, top-1 against `{ref}`'
                f'{_mark(study, ref, ratio)}: higher: '
                f'{", ".join(better) or "none"}; lower: '
                f'{", ".join(worse) or "none"}; not resolved: '
                f'{", ".join(unresolved) or "none"}.')
    return '\n'.join(out)


def controls_table(study: DigitsStudy) -> str:
    lines = ['| comparison | what differs | ratio | Δ top-1 | Δ few | '
             'verdict (top-1 / few) |', '|---|---|---|---|---|---|']
    for a, b, what in CONTROLS:
        for ratio in study.ratios():
            top1 = study.compare(a, b, ratio, 'top1')
            if top1 is None:
                continue
            few = study.compare(a, b, ratio, 'few')
            verdicts = stats.verdict(top1['images'])
            verdicts += ' / ' + (stats.verdict(few['images'])
                                 if few is not None else '–')
            what_here = what
            if METHODS[a].knob is not None or METHODS[b].knob is not None:
                what_here += (f'; each at its own held-out choice: `{a}`'
                              f'{_knob_note(study, a) or " –"}, `{b}`'
                              f'{_knob_note(study, b) or " –"}')
            lines.append(f'| `{a}`{_mark(study, a, ratio)} − `{b}`'
                         f'{_mark(study, b, ratio)} | {what_here} | {ratio:g} | '
                         f'{_ci_cell(top1)} | {_ci_cell(few)} | {verdicts} |')
    return '\n'.join(lines)


def stale_block(study: DigitsStudy) -> str:
    """Which arms still rest on rows that no longer describe the code."""
    if not study.stale:
        return ('Every row on this page was written by the current code '
                '(same seed, same backbone weights in every arm).')
    by_ratio = {}
    for method, ratio in study.stale:
        by_ratio.setdefault(ratio, []).append(f'`{method}`')
    listing = '; '.join(f'ratio {ratio:g}: {", ".join(names)}'
                        for ratio, names in sorted(by_ratio.items()))
    return (
        f'**Stale rows (marked † below).** Until the initialisation change '
        f'of CifarResNet (it now initialises when built, so that at one '
        f'seed every head gets the same backbone weights), the linear-head '
        f'arms started from other backbone weights than the ETF and cosine '
        f'arms at the same seed; the ETF and cosine arms\' weights did not '
        f'change. These arms are still shown with their rows from before '
        f'the change, which no longer describe the code: {listing}. Their '
        f'comparisons are paired by seed but not by initialisation. To '
        f'replace them: `python tools/analysis/digits_study.py run '
        f'--methods METHOD ...` (the runner skips only current rows).')


def la_controls_table(study: DigitsStudy,
                      comparisons: Sequence[tuple] = LA_CONTROLS,
                      ratios: Optional[Sequence[float]] = None) -> str:
    """Paired top-1, many- and few-shot differences of ``comparisons``
    (``(a, b, what differs)``) at every ratio (or at ``ratios``)."""
    lines = ['| comparison | what differs | ratio | n | Δ top-1 | Δ many | '
             'Δ few | verdict (top-1 / many / few) |',
             '|---|---|---|---|---|---|---|---|']
    for a, b, what in comparisons:
        for ratio in (study.ratios() if ratios is None else ratios):
            cis = {m: study.compare(a, b, ratio, m) for m, _ in GROUP_WORDS}
            if cis['top1'] is None:
                continue
            verdicts = ' / '.join(
                stats.verdict(ci['images']) if ci is not None else '–'
                for ci in cis.values())
            lines.append(
                f'| `{a}`{_mark(study, a, ratio)} − `{b}`'
                f'{_mark(study, b, ratio)} | {what} | {ratio:g} | '
                f'{cis["top1"]["images"]["n"]} | ' +
                ' | '.join(_ci_cell(ci) for ci in cis.values()) +
                f' | {verdicts} |')
    if len(lines) == 2:
        return '(no paired runs of these arms yet)'
    return '\n'.join(lines)


def prototype_contrast_block(study: DigitsStudy) -> str:
    """Where the prototype-contrast arms land (issue 24.6), at the tuning
    ratio: their accuracy and their paired differences."""
    ratio = TUNING_RATIO
    arms = [m for m in ('cosine_pc', 'etf_pc', 'cosine_pc_posthoc',
                        'etf_pc_posthoc') if study.runs(m, ratio)]
    if not arms:
        return ('(no evaluation runs of `cosine_pc` / `etf_pc` yet: '
                '`python tools/analysis/digits_study.py run --methods '
                'cosine_pc etf_pc` adds them)')
    lines = ['| arm | n | top-1 | many | medium | few |',
             '|---|---|---|---|---|---|']
    for method in ('ce', 'posthoc_la', 'etf_dr_cb', 'la', 'etf_la') + \
            tuple(arms):
        runs = study.runs(method, ratio)
        if runs:
            lines.append(
                f'| `{method}`{_knob_note(study, method)}'
                f'{_mark(study, method, ratio)} | {len(runs)} | ' +
                ' | '.join(_mean_sd(study.values(method, ratio, g))
                           for g in ('top1', 'many', 'medium', 'few')) +
                ' |')
    return '\n'.join(lines) + '\n\n' + la_controls_table(
        study, PC_CONTROLS, [ratio])


def _ci_words(ci: Optional[dict]) -> str:
    if ci is None:
        return '(no paired runs)'
    return (f'{stats.format_ci(ci["images"])} '
            f'({stats.verdict(ci["images"])})')


def fixed_geometry_block(study: DigitsStudy) -> str:
    """The issue-24 goal: does fixing the geometry help beyond a normalised,
    bounded-logit head with logit adjustment, at the tuning ratio?"""
    ratio = TUNING_RATIO
    fixed = {m: study.compare('etf_la', 'cosine_la', ratio, m)
             for m in ('top1', 'few')}
    if fixed['top1'] is None:
        return ('`etf_la` and `cosine_la` have no paired runs at ratio '
                f'{ratio:g} yet: the question is open.')
    neck = {m: study.compare('cosine_la', 'la', ratio, m)
            for m in ('top1', 'few')}
    helps = all(ci is not None and ci['images']['lo'] > 0
                for ci in fixed.values())
    n = fixed['top1']['images']['n']
    text = (f'At ratio {ratio:g}, {n} paired seeds: fixed ETF − learnable '
            f'cosine rows, both with logit adjustment at their own '
            f'held-out τ (`etf_la`{_knob_note(study, "etf_la")} − '
            f'`cosine_la`{_knob_note(study, "cosine_la")}): top-1 '
            f'{_ci_words(fixed["top1"])}, few-shot {_ci_words(fixed["few"])}. '
            f'The normalised head itself (`cosine_la` − `la`'
            f'{_knob_note(study, "la")}): top-1 {_ci_words(neck["top1"])}, '
            f'few-shot {_ci_words(neck["few"])}.')
    edge = [m for m in ('etf_la', 'cosine_la') if m in study.chosen
            and study.chosen[m]['value'] in (METHODS[m].knob.values[0],
                                             METHODS[m].knob.values[-1])]
    if edge:
        text += (f' {" and ".join(f"`{m}`" for m in edge)} chose τ at the '
                 f'edge of the grid: a value beyond it, not tried, may move '
                 f'the comparison.')
    permuted = DigitsStudy(study.rows, phase='perm')
    moved = {m: permuted.compare('etf_la', 'cosine_la', ratio, m)
             for m in ('top1', 'few')}
    if moved['top1'] is not None:
        text += (f' With the tail digits drawn from each seed (the '
                 f'permuted class orders below, '
                 f'{moved["top1"]["images"]["n"]} seeds): top-1 '
                 f'{_ci_words(moved["top1"])}, few-shot '
                 f'{_ci_words(moved["few"])}.')
    if helps:
        return (f'**The fixed geometry helps.** {text} Both intervals of '
                f'the fixed-versus-learnable comparison exclude zero in '
                f'favour of the fixed ETF.')
    return (f'**Not shown that the fixed geometry helps.** {text} The '
            f'fixed-versus-learnable intervals do not both exclude zero in '
            f'favour of the fixed ETF, so on this data the recipe\'s gain '
            f'over logit adjustment cannot be credited to fixing the '
            f'classifier: within these intervals the same normalised, '
            f'bounded-logit head with learnable rows does as well.')


def class_order_block(study: DigitsStudy, rows: List[dict]) -> str:
    """The ratio-0.01 comparisons again with the classes from head to tail
    drawn from each seed (the study's ``'perm'`` runs), beside the natural
    order's (digit 9 always the rarest) at the same seeds."""
    ratio = PERM_RATIO
    permuted = DigitsStudy(rows, phase='perm')
    arms = [m for m in PERM_METHODS if permuted.runs(m, ratio)]
    if not arms:
        return ('(no runs with permuted class orders yet: `python '
                'tools/analysis/digits_study.py run` adds them)')
    tails = {}
    for method in arms:
        for seed, row in permuted.runs(method, ratio).items():
            tails[seed] = shot_groups(row['class_counts'], MANY_THR,
                                      FEW_THR)['few'].tolist()
    lines = [
        f'Few-shot digits per seed: ' + '; '.join(
            f'seed {seed}: {", ".join(map(str, tail))}'
            for seed, tail in sorted(tails.items())) +
        ' (natural order: ' + ', '.join(
            map(str, study.few_classes(ratio))) + ' at every seed). Seeds '
        f'at which each digit is few-shot: ' + ', '.join(
            f'{c}: {sum(c in t for t in tails.values())}'
            for c in range(len(study.counts(ratio)))) + '.', '',
        '| arm | n | top-1 | many | medium | few | top-1, natural order |',
        '|---|---|---|---|---|---|---|']
    for method in arms:
        lines.append(
            f'| `{method}`{_knob_note(study, method)} | '
            f'{len(permuted.runs(method, ratio))} | ' +
            ' | '.join(_mean_sd(permuted.values(method, ratio, g))
                       for g in ('top1', 'many', 'medium', 'few')) +
            f' | {_mean_sd(study.values(method, ratio, "top1"))} |')
    lines += ['', '| comparison | what differs | n | Δ top-1 | Δ many | '
              'Δ few | verdict (top-1 / many / few) | natural order: Δ '
              'top-1, Δ few |', '|---|---|---|---|---|---|---|---|']
    agreement = {'both': [], 'natural': [], 'permuted': [], 'neither': []}
    for a, b, what in PERM_CONTROLS:
        cis = {m: permuted.compare(a, b, ratio, m) for m, _ in GROUP_WORDS}
        if cis['top1'] is None:
            continue
        natural_top1 = study.compare(a, b, ratio, 'top1')
        resolved = (stats.verdict(cis['top1']['images']) != 'not resolved',
                    natural_top1 is not None and stats.verdict(
                        natural_top1['images']) != 'not resolved')
        agreement[{(True, True): 'both', (False, True): 'natural',
                   (True, False): 'permuted',
                   (False, False): 'neither'}[resolved]].append(
                       f'`{a}` − `{b}`')
        verdicts = ' / '.join(
            stats.verdict(ci['images']) if ci is not None else '–'
            for ci in cis.values())
        natural = ', '.join(_ci_cell(study.compare(a, b, ratio, m))
                            for m in ('top1', 'few'))
        lines.append(
            f'| `{a}` − `{b}` | {what} | {cis["top1"]["images"]["n"]} | ' +
            ' | '.join(_ci_cell(ci) for ci in cis.values()) +
            f' | {verdicts} | {natural} |')
    words = {'both': 'resolved at both orders',
             'natural': 'resolved at the natural order only',
             'permuted': 'resolved at the permuted orders only',
             'neither': 'resolved at neither'}
    lines += ['', 'Top-1: ' + '; '.join(
        f'{words[k]}: {", ".join(v)}' for k, v in agreement.items() if v) +
        '.']
    return '\n'.join(lines)


def many_shot_block(study: DigitsStudy) -> str:
    """The many-shot accuracy the recipe gives up, stated with the gain."""
    ratio = TUNING_RATIO
    parts = []
    for ref in ('la', 'la_default', 'cosine_la'):
        ci = study.compare('etf_la', ref, ratio, 'many')
        if ci is None:
            continue
        parts.append(
            f'against `{ref}`{_mark(study, ref, ratio)} '
            f'({_mean_sd(study.values(ref, ratio, "many"))}): '
            f'{_ci_words(ci)}')
    if not parts:
        return ''
    return (f'**Many-shot cost.** The recipe `etf_la` reaches '
            f'{_mean_sd(study.values("etf_la", ratio, "many"))} many-shot '
            f'accuracy at ratio {ratio:g} (mean ± sd over seeds); paired '
            f'difference in points ' + '; '.join(parts) + '.')


def zoo_block(study: DigitsStudy) -> str:
    """Model-zoo numbers of the digits configs: mean ± sd over the
    evaluation seeds at ratio 0.01 (the configs' own ratio), and seed 0 (the
    config's default seed, what one `tools/train.py` run gives on the
    machine that wrote the rows)."""
    ratio = TUNING_RATIO
    lines = ['| config | arm | n | top-1 | many | medium | few | top-1 at '
             'seed 0 |', '|---|---|---|---|---|---|---|---|']
    for method in ZOO_ARMS:
        runs = study.runs(method, ratio)
        if not runs:
            continue
        seed0 = runs.get(0, {}).get('test', {}).get('top1')
        lines.append(
            f'| `{METHODS[method].config}` | `{method}`'
            f'{_knob_note(study, method)}{_mark(study, method, ratio)} | '
            f'{len(runs)} | ' +
            ' | '.join(_mean_sd(study.values(method, ratio, g))
                       for g in ('top1', 'many', 'medium', 'few')) +
            f' | {"–" if seed0 is None else f"{seed0:.1f}"} |')
    return '\n'.join(lines)


def nc_table(study: DigitsStudy, ratio: float) -> str:
    lines = [
        '| method | NC1 unnormalised | NC1 normalised | tail-half means cos '
        '(normalised) | head-half means cos (normalised) | tail/head '
        'mean-norm ratio (unnormalised) | tail-half classifier rows cos |',
        '|---|---|---|---|---|---|---|'
    ]
    for method in study.methods(ratio):
        runs = [r for r in study.runs(method, ratio).values() if 'nc' in r]
        if not runs:
            continue

        def get(stage, key):
            return [r['nc'][stage].get(key) for r in runs]

        ratio_cells = [
            (r['nc']['unnormalized'].get('mean_norm_ratio_few', np.nan) /
             r['nc']['unnormalized'].get('mean_norm_ratio_many', np.nan))
            for r in runs
        ]
        w_cos = ('fixed: −0.111' if METHODS[method].family == 'etf' else
                 _mean_sd(get('pre_logits', 'mc_w_cos_few'), 3))
        lines.append(
            f'| {_label(method)} | '
            f'{_mean_sd(get("unnormalized", "nc1"), 3)} | '
            f'{_mean_sd(get("normalized", "nc1"), 3)} | '
            f'{_mean_sd(get("normalized", "mc_means_cos_few"), 3)} | '
            f'{_mean_sd(get("normalized", "mc_means_cos_many"), 3)} | '
            f'{_mean_sd(ratio_cells, 3)} | {w_cos} |')
    return '\n'.join(lines)


def nc_by_ratio_table(study: DigitsStudy) -> str:
    ratios = study.ratios()
    lines = ['| method | ' + ' | '.join(f'ratio {r:g}' for r in ratios) +
             ' |', '|---' * (len(ratios) + 1) + '|']
    for method in METHODS:
        cells = []
        for ratio in ratios:
            runs = [r for r in study.runs(method, ratio).values()
                    if 'nc' in r]
            cells.append(_mean_sd(
                [r['nc']['normalized'].get('mc_means_cos_few') for r in runs],
                3))
        if any(c != '–' for c in cells):
            lines.append(f'| {_label(method)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def first_epoch(curve: Sequence[dict], key: str, threshold: float,
                max_epochs: int) -> int:
    """First epoch whose ``key`` reaches ``threshold``; ``max_epochs + 1``
    (censored) if none does."""
    for record in curve:
        if record.get(key) is not None and record[key] >= threshold:
            return record['epoch']
    return max_epochs + 1


def convergence_table(study: DigitsStudy) -> str:
    lines = ['| ratio | method | ' + ' | '.join(
        f'epochs to 1 − cos ≤ {t:g} (not reached)'
        for t in ALIGNMENT_TOLERANCES) + ' | final class-mean cos | '
        'final NC1 |', '|---|---|' + '---|' * (len(ALIGNMENT_TOLERANCES) + 2)]
    diffs = []
    for ratio in study.ratios():
        per_method = {}
        for method in ('etf_ce', 'etf_dr', 'etf_dr_cb'):
            runs = study.runs(method, ratio)
            if not runs:
                continue
            epochs = {}
            for tol in ALIGNMENT_TOLERANCES:
                epochs[tol] = {
                    s: first_epoch(r['nc']['pre_logits_curve'], 'wm_cos',
                                   1 - tol, r['max_epochs'])
                    for s, r in runs.items()
                }
            per_method[method] = epochs
            cells = []
            for tol in ALIGNMENT_TOLERANCES:
                values = np.array(list(epochs[tol].values()), dtype=float)
                censored = int((values > next(iter(
                    runs.values()))['max_epochs']).sum())
                cells.append(f'{_mean_sd(values)} ({censored})')
            final = [r['nc']['pre_logits']['wm_cos'] for r in runs.values()]
            nc1 = [r['nc']['pre_logits']['nc1'] for r in runs.values()]
            lines.append(f'| {ratio:g} | {_label(method)} | ' +
                         ' | '.join(cells) +
                         f' | {_mean_sd(final, 3)} | {_mean_sd(nc1, 3)} |')
        if 'etf_ce' in per_method and 'etf_dr' in per_method:
            for tol in ALIGNMENT_TOLERANCES:
                a, b = per_method['etf_dr'][tol], per_method['etf_ce'][tol]
                seeds = sorted(set(a) & set(b))
                end = next(iter(study.runs('etf_dr', ratio).values()))[
                    'max_epochs']
                if all(a[s] > end and b[s] > end for s in seeds):
                    diffs.append(f'- ratio {ratio:g}, 1 − cos ≤ {tol:g}: '
                                 f'neither loss gets there in any run.')
                    continue
                ci = stats.paired_bootstrap([a[s] for s in seeds],
                                            [b[s] for s in seeds],
                                            n_boot=N_BOOT)
                diffs.append(
                    f'- ratio {ratio:g}, 1 − cos ≤ {tol:g}: DR − CE = '
                    f'{ci["mean"]:+.1f} [{ci["lo"]:+.1f}, {ci["hi"]:+.1f}] '
                    f'epochs (n = {ci["n"]}; negative = DR faster): '
                    f'{stats.verdict(ci, "CE faster", "DR faster")}.')
    return '\n'.join(lines) + '\n\n' + '\n'.join(diffs)


# --------------------------------------------------------------------------
# Figures


def _style(i: int) -> dict:
    styles = ['-', '--', '-.', ':']
    markers = ['o', 's', '^', 'v', 'D', 'x', 'P', '*']
    return dict(ls=styles[i % len(styles)], marker=markers[i % len(markers)],
                markersize=4)


def forest_figure(study: DigitsStudy, ref: str, path: str) -> None:
    """Paired differences against ``ref`` with their intervals, one panel
    per metric, one row per method and ratio."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    ratios = study.ratios()
    methods = [m for m in METHODS if m != ref and any(
        study.runs(m, r) for r in ratios)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.45 * len(methods) + 2.6),
                             sharey=True)
    offsets = np.linspace(-0.25, 0.25, len(ratios))
    for ax, (metric, words) in zip(axes, (('top1', 'top-1'),
                                          ('few', 'few-shot'))):
        for j, ratio in enumerate(ratios):
            ys, means, los, his, ns = [], [], [], [], set()
            for i, method in enumerate(methods):
                ci = study.compare(method, ref, ratio, metric)
                if ci is None:
                    continue
                ns.add(ci['images']['n'])
                ys.append(i + offsets[j])
                means.append(ci['images']['mean'])
                los.append(ci['images']['mean'] - ci['images']['lo'])
                his.append(ci['images']['hi'] - ci['images']['mean'])
            if ys:
                n = '/'.join(map(str, sorted(ns)))
                ax.errorbar(means, ys, xerr=[los, his], fmt=_style(j)[
                    'marker'], capsize=3, label=f'ratio {ratio:g} (n = {n} '
                    f'paired seeds)')
        ax.axvline(0, color='k', lw=0.8)
        ax.set_title(f'{words} accuracy', fontsize=10)
        ax.set_xlabel('difference (points)')
        ax.grid(axis='x', alpha=0.3)
    axes[0].set_yticks(range(len(methods)))
    axes[0].set_yticklabels([_label(m) for m in methods], fontsize=8)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='upper center', ncol=len(ratios),
               bbox_to_anchor=(0.5, 0.97), frameon=False)
    fig.suptitle(f'Paired difference against {_label(ref)}: mean and 95 % '
                 f'CI over seeds and test images', fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tau_curves(study: DigitsStudy) -> Dict[str, List[dict]]:
    """Held-out accuracy against τ of each logit-adjusted arm, over its
    tuning seeds: ``{method: [{'value', 'macro', 'macro_sd', 'few',
    'few_sd', 'n'}]}`` (current rows only)."""
    curves = {}
    for method in LA_FAMILY:
        knob = METHODS[method].knob
        points = []
        for value in knob.values:
            found = [r for r in study.rows
                     if r['phase'] == 'tune' and r['method'] == method
                     and r['seed'] in knob.seeds and not is_stale(r)
                     and r['knobs'].get(knob.key) == value]
            if not found:
                continue
            point = dict(value=value, n=len(found))
            for key in ('macro', 'few'):
                vals = np.array([r['heldout'].get(key, np.nan)
                                 for r in found], dtype=float)
                point[key] = float(np.nanmean(vals))
                point[key + '_sd'] = float(np.nanstd(vals, ddof=1)) \
                    if len(vals) > 1 else 0.0
            points.append(point)
        if points:
            curves[method] = points
    return curves


def tau_figure(study: DigitsStudy, path: str) -> None:
    """Held-out balanced and few-shot accuracy against τ, one line per
    logit-adjusted arm (mean ± std over its tuning seeds), the chosen τ
    circled."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    curves = tau_curves(study)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for i, (method, points) in enumerate(curves.items()):
        taus = [p['value'] for p in points]
        n = '/'.join(map(str, sorted({p['n'] for p in points})))
        for ax, key in zip(axes, ('macro', 'few')):
            mean = np.array([p[key] for p in points])
            sd = np.array([p[key + '_sd'] for p in points])
            line, = ax.plot(taus, mean, label=f'{_label(method)} (n = {n} '
                            f'tuning seeds)', **_style(i))
            ax.fill_between(taus, mean - sd, mean + sd, alpha=0.12,
                            color=line.get_color())
            if method in study.chosen:
                value = study.chosen[method]['value']
                j = taus.index(value)
                ax.plot([value], [mean[j]], 'o', ms=12, mfc='none',
                        color=line.get_color())
    axes[0].set_ylabel('held-out balanced accuracy (%)')
    axes[1].set_ylabel('held-out few-shot accuracy (%)')
    for ax in axes:
        ax.set_xlabel('τ of the logit-adjusted loss')
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='upper center', ncol=1,
               bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.suptitle(f'digits-LT ratio {TUNING_RATIO:g}, held-out images of the '
                 f'tuning seeds; mean ± std over seeds, chosen τ circled',
                 y=0.82, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.78))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_figure(study: DigitsStudy, ratio: float, path: str) -> None:
    """Test top-1 over epochs (mean ± std over seeds), one panel per family
    of classifier."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = (('learnable linear', ('ce', 'la', 'la_default', 'ce_cb')),
              ('learnable cosine and fixed ETF, CE losses',
               ('cosine_ce', 'cosine_la', 'etf_ce', 'etf_la')),
              ('fixed ETF, DR losses', ('etf_dr', 'etf_dr_cb', 'etf_dr_q')))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    for ax, (title, methods) in zip(axes, panels):
        for i, method in enumerate(methods):
            runs = study.runs(method, ratio)
            if not runs:
                continue
            epochs = next(iter(runs.values()))['curve']['epoch']
            acc = np.array([r['curve']['top1'] for r in runs.values()])
            mean, sd = acc.mean(0), acc.std(0, ddof=1) if len(acc) > 1 \
                else np.zeros(acc.shape[1])
            line, = ax.plot(epochs, mean, label=f'{_label(method)} (n = '
                            f'{len(acc)})', **_style(i))
            ax.fill_between(epochs, mean - sd, mean + sd, alpha=0.15,
                            color=line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.14),
                  fontsize=7.5, frameon=False)
    axes[0].set_ylabel(f'test top-1 (%), mean ± std over seeds')
    fig.suptitle(f'digits-LT, imbalance ratio {ratio:g}', fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)


def convergence_figure(study: DigitsStudy, ratio: float, path: str) -> None:
    """Alignment of the training class means with their ETF vectors and NC1
    over epochs (mean ± std), for the fixed-ETF arms."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for i, method in enumerate(('etf_ce', 'etf_dr', 'etf_dr_cb')):
        runs = study.runs(method, ratio)
        if not runs:
            continue
        curves = [r['nc']['pre_logits_curve'] for r in runs.values()]
        epochs = [c['epoch'] for c in curves[0]]
        for ax, key in zip(axes, ('wm_cos', 'nc1')):
            values = np.array([[c[key] for c in curve] for curve in curves])
            # NC1 spans decades and is drawn on a log axis, where mean - std
            # can fall below zero: its band is the geometric one.
            log_scale = key == 'nc1'
            if log_scale:
                values = np.log(values)
            mean = values.mean(0)
            sd = values.std(0, ddof=1) if len(values) > 1 else 0 * mean
            low, centre, high = mean - sd, mean, mean + sd
            if log_scale:
                low, centre, high = np.exp(low), np.exp(centre), np.exp(high)
            line, = ax.plot(epochs, centre, label=f'{_label(method)} (n = '
                            f'{len(values)})', **_style(i))
            ax.fill_between(epochs, low, high, alpha=0.15,
                            color=line.get_color())
    for tol in ALIGNMENT_TOLERANCES:
        axes[0].axhline(1 - tol, color='gray', lw=0.8, ls=':')
    axes[0].set_ylabel('mean cos(class mean, its ETF vector), training set')
    axes[1].set_ylabel('NC1 (training set, normalised features),\n'
                       'geometric mean × / ÷ geometric std')
    axes[1].set_yscale('log')
    for ax in axes:
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(f'digits-LT ratio {ratio:g}: same initialisation and ETF '
                 f'per seed; mean ± std over seeds', y=0.99, fontsize=10)
    fig.legend(handles, labels, loc='upper center', ncol=3,
               bbox_to_anchor=(0.5, 0.94), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------
# Pages


def _published(data_dir: str) -> dict:
    with open(osp.join(data_dir, 'published_numbers.json'),
              encoding='utf-8') as f:
        return json.load(f)


def published_block(data_dir: str) -> str:
    data = _published(data_dir)
    table = data['cifar100lt_densenet']
    lines = ['| ' + ' | '.join(table['columns']) + ' |',
             '|---' * len(table['columns']) + '|']
    for row in table['rows']:
        lines.append('| ' + ' | '.join(map(str, row)) + ' |')
    return '\n'.join(lines) + f'\n\nSource: {table["source"]}'


def published_baselines_block(data_dir: str) -> str:
    return '\n'.join(f'- {entry["text"]} ({entry["source"]})'
                     for entry in _published(data_dir)['baselines'])


def sessions_block(data_dir: str, study: DigitsStudy) -> str:
    path = osp.join(data_dir, 'digits_lt_sessions.jsonl')
    sessions = load_rows(path)
    cpu = sum(r.get('seconds', 0) for r in study.rows)
    phases = {p: sum(r['phase'] == p for r in study.rows)
              for p in ('eval', 'perm', 'tune')}
    text = (f'{len(study.rows)} runs in the file ({phases["eval"]} '
            f'evaluation, {phases["perm"]} with permuted class orders, '
            f'{phases["tune"]} tuning; rows that no longer describe the code '
            f'are kept and counted); their own run times add up to '
            f'{cpu / 3600:.2f} h.')
    if sessions:
        wall = sum(s['wall_seconds'] for s in sessions)
        text += (f' Wall time of the study command over {len(sessions)} '
                 f'invocation(s): {wall / 3600:.2f} h with '
                 f'{sessions[-1]["workers"]} worker processes.')
        text += _invocations_text(sessions, study.rows)
    checks = load_rows(osp.join(data_dir, 'rerun_checks.jsonl'))
    for check in checks:
        text += (f'\n\nRerun check ({check["date"]}): `{check["id"]}` rerun '
                 f'in a fresh process: ' +
                 ('every field of its row reproduced exactly (run time and '
                  'host aside).' if not check['different'] else
                  f'fields {check["different"]} differ.'))
    return text


def _invocations_text(sessions: List[dict], rows: List[dict]) -> str:
    """Which arms each invocation of the study added: the per-run file is
    appended in run order, so invocation ``i`` wrote the ``runs_added`` rows
    after those of the invocations before it."""
    if sum(s['runs_added'] for s in sessions) != len(rows):
        return ''
    parts, start = [], 0
    for number, session in enumerate(sessions, 1):
        added = rows[start:start + session['runs_added']]
        start += session['runs_added']
        methods = sorted({r['method'] for r in added},
                         key=lambda m: list(METHODS).index(m))
        stopped = ', stopped before the end' if session.get(
            'interrupted') else ''
        parts.append(f'invocation {number} ({session["date"]}{stopped}): '
                     f'{len(added)} runs' + (' of ' if added else '') +
                     ', '.join(f'`{m}`' for m in methods))
    return ' Runs by invocation: ' + '; '.join(parts) + '.'


def baselines_table(study: DigitsStudy) -> str:
    lines = ['| ratio | baseline | n | top-1 | many | medium | few | Δ top-1 '
             'vs CE | Δ few vs CE |', '|---|---|---|---|---|---|---|---|---|']
    for ratio in study.ratios():
        for method in BASELINES:
            runs = study.runs(method, ratio)
            if not runs:
                continue
            cells = [_mean_sd(study.values(method, ratio, g))
                     for g in ('top1', 'many', 'medium', 'few')]
            cis = [
                '–' if method == 'ce' else _ci_cell(
                    study.compare(method, 'ce', ratio, m))
                for m in ('top1', 'few')
            ]
            lines.append(f'| {ratio:g} | {_label(method)}'
                         f'{_knob_note(study, method)}'
                         f'{_mark(study, method, ratio)} | {len(runs)} | ' +
                         ' | '.join(cells + cis) + ' |')
    return '\n'.join(lines)


def heldout_head_block(study: DigitsStudy, ratio: float) -> str:
    """How many held-out images class 0 (the largest) has at ``ratio``,
    against the other classes, over the evaluation runs there."""
    per_class = np.array([
        np.bincount(stats.decode_labels(r['heldout']['gt']),
                    minlength=len(r['class_counts']))
        for r in study.eval_rows if r['ratio'] == ratio and 'heldout' in r])
    if len(per_class) == 0:
        return f'at imbalance ratio {ratio:g}: no runs yet'

    def span(values) -> str:
        lo, hi = int(np.min(values)), int(np.max(values))
        return f'{lo}' if lo == hi else f'{lo}–{hi}'

    return (f'at imbalance ratio {ratio:g}, class 0 has '
            f'{span(per_class[:, 0])} held-out images, the other classes '
            f'{span(per_class[:, 1:])} each')


def render_digits(data_dir: str, docs_dir: str,
                  ufm: Optional[dict] = None) -> DigitsStudy:
    """Write results.md, baselines.md and the digits figures (``ufm``:
    :func:`~.ufm_report.load_ufm` of ``data_dir`` when already read)."""
    if ufm is None:
        ufm = load_ufm(data_dir)
    study = DigitsStudy(load_rows(osp.join(data_dir,
                                           'digits_lt_runs.jsonl')))
    figures = osp.join(docs_dir, 'figures')
    os.makedirs(figures, exist_ok=True)
    main_ratio = TUNING_RATIO
    forest_figure(study, 'la', osp.join(figures, 'digits_lt_vs_la.png'))
    forest_figure(study, 'ce', osp.join(figures, 'digits_lt_vs_ce.png'))
    curves_figure(study, main_ratio,
                  osp.join(figures, 'digits_lt_curves.png'))
    convergence_figure(study, main_ratio,
                       osp.join(figures, 'digits_lt_convergence.png'))
    tau_figure(study, osp.join(figures, 'digits_lt_tau_curves.png'))
    blocks = dict(
        stale=stale_block(study),
        la_controls=la_controls_table(study),
        fixed_geometry=fixed_geometry_block(study),
        class_order=class_order_block(study, study.rows),
        prototype_contrast=prototype_contrast_block(study),
        many_shot=many_shot_block(study),
        zoo=zoo_block(study),
        la_tuning_seeds=', '.join(map(str, LA_TUNING_SEEDS)),
        setup=setup_block(study),
        methods=methods_block(study),
        tuning=tuning_block(study),
        goal=goal_block(study),
        claims=claims_block(study),
        main_tables='\n\n'.join(
            f'### Ratio {r:g}\n\n{main_table(study, r)}'
            for r in study.ratios()),
        group_tables='\n\n'.join(
            f'Ratio {r:g}:\n\n{groups_table(study, r)}'
            for r in study.ratios()),
        controls=controls_table(study),
        nc_table=nc_table(study, main_ratio),
        nc_by_ratio=nc_by_ratio_table(study),
        convergence=convergence_table(study),
        published=published_block(data_dir),
        sessions=sessions_block(data_dir, study),
        n_boot=str(N_BOOT),
        tuning_seeds=', '.join(map(str, TUNING_SEEDS)),
        tuning_ratio=f'{TUNING_RATIO:g}',
        simplex_tolerance=f'{SIMPLEX_TOLERANCE:g}',
        tolerances=' and '.join(f'{t:g}' for t in ALIGNMENT_TOLERANCES),
        ufm_convergence=ufm_convergence_summary(data_dir, ufm),
        ufm_summary=_ufm_summary(data_dir, ufm),
    )
    write(osp.join(docs_dir, 'results.md'),
           fill(template('results.md'), blocks))
    write(osp.join(docs_dir, 'baselines.md'),
           fill(template('baselines.md'), dict(
               baselines_table=baselines_table(study),
               tuning=tuning_block(study),
               heldout_head=heldout_head_block(study, TUNING_RATIO),
               published_baselines=published_baselines_block(data_dir))))
    return study


def ufm_convergence_summary(data_dir: str,
                            ufm: Optional[dict] = None) -> str:
    if ufm is None:
        return race_summary(_load(data_dir, 'ufm_convergence.json'))
    return race_summary(ufm['race'], ufm['race_rows'])


def _ufm_summary(data_dir: str, ufm: Optional[dict] = None) -> str:
    return ufm_summary(data_dir, ufm)


def render_all(data_dir: str = osp.join(REPO, 'docs', 'data'),
               docs_dir: str = osp.join(REPO, 'docs')) -> None:
    """Regenerate every generated page and figure from ``data_dir``."""
    ufm = load_ufm(data_dir)
    render_digits(data_dir, docs_dir, ufm)
    render_ufm(data_dir, docs_dir, ufm)
