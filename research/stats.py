"""Accuracies from stored predictions and paired bootstrap confidence
intervals: the statistics of the long-tail study.

Every run of the study stores its per-image test predictions, so every
accuracy is recomputed here from them (:func:`accuracy_metrics`, the
definitions of ``LongTailAccuracy``), and two methods are compared *paired*:
per seed, on the same images.

Two intervals are offered for a mean paired difference:

- :func:`paired_bootstrap` resamples seeds: the spread of training (the
  initialisation, the long-tailed subsample, the ETF rotation, the batch
  order) with the test set held fixed;
- :func:`paired_bootstrap_images` resamples seeds *and* test images
  (stratified by class, so the resampled test set stays balanced), the same
  image draw for both methods and all seeds: it adds the sampling error of
  a finite test set (about 1.5 points for one 500-image set, 2.8 on 250
  few-shot images), which the first interval treats as fixed.

Both are percentile intervals of ``n_boot`` resamples from a seeded
generator, so a table is reproduced exactly.
"""
from typing import Dict, Optional, Sequence

import numpy as np

from etf_plugin.functional.long_tail import shot_groups

GROUPS = ('many', 'medium', 'few')


def decode_labels(text: str) -> np.ndarray:
    """``'0192'`` -> ``array([0, 1, 9, 2])`` (labels stored one digit per
    sample, for fewer than 11 classes)."""
    return np.frombuffer(text.encode('ascii'), dtype=np.uint8).astype(
        np.int64) - ord('0')


def encode_labels(labels: Sequence[int]) -> str:
    """Inverse of :func:`decode_labels`; every label must be in 0..9."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError('encode_labels stores one digit per label: labels '
                         'must lie in 0..9.')
    return ''.join(map(str, labels.tolist()))


def per_class_accuracy(pred: np.ndarray, gt: np.ndarray,
                       num_classes: int) -> np.ndarray:
    """``(K,)`` top-1 accuracy of every class in percent, NaN for a class
    absent from ``gt``."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    hits = np.bincount(gt[pred == gt], minlength=num_classes)
    sizes = np.bincount(gt, minlength=num_classes)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(sizes > 0, 100.0 * hits / np.maximum(sizes, 1),
                        np.nan)


def accuracy_metrics(pred: Sequence[int], gt: Sequence[int],
                     train_counts: Sequence[int], many_thr: float,
                     few_thr: float) -> Dict[str, float]:
    """``top1``, ``macro`` and the ``many``/``medium``/``few`` means of the
    per-class accuracies, as ``LongTailAccuracy`` defines them (a group
    without an evaluated class is left out).

    Args:
        pred (Sequence[int]): Predicted labels.
        gt (Sequence[int]): True labels.
        train_counts (Sequence[int]): Training samples per class.
        many_thr (float): Many-shot: more training samples than this.
        few_thr (float): Few-shot: fewer than this.

    Returns:
        dict: Accuracies in percent.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    num_classes = len(train_counts)
    per_class = per_class_accuracy(pred, gt, num_classes)
    result = dict(top1=100.0 * float(np.mean(pred == gt)),
                  macro=float(np.nanmean(per_class)))
    for name, members in shot_groups(train_counts, many_thr,
                                     few_thr).items():
        values = per_class[members]
        values = values[~np.isnan(values)]
        if len(values):
            result[name] = float(values.mean())
    return result


def paired_bootstrap(a: Sequence[float],
                     b: Sequence[float],
                     n_boot: int = 10000,
                     level: float = 0.95,
                     seed: int = 0) -> Dict[str, float]:
    """Mean paired difference ``a - b`` and its bootstrap CI over seeds.

    Args:
        a (Sequence[float]): Per-seed values of method A.
        b (Sequence[float]): Per-seed values of method B, same seed order.
        n_boot (int): Resamples. Defaults to 10000.
        level (float): Coverage. Defaults to 0.95.
        seed (int): Seed of the resampling. Defaults to 0.

    Returns:
        dict: ``mean``, ``lo``, ``hi``, ``n``, ``wins`` (seeds with ``a >
        b``), ``losses`` and ``sd`` (the std of the differences).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f'Need two equally long 1-d samples, got shapes '
                         f'{a.shape} and {b.shape}.')
    diff = a - b
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[draws].mean(axis=1)
    return _summary(diff, means, level)


def paired_bootstrap_images(pred_a: np.ndarray,
                            pred_b: np.ndarray,
                            gt: np.ndarray,
                            classes: Optional[Sequence[int]] = None,
                            n_boot: int = 10000,
                            level: float = 0.95,
                            seed: int = 0,
                            class_mask: Optional[np.ndarray] = None
                            ) -> Dict[str, float]:
    """Mean paired difference of (group) accuracy, resampling seeds and
    test images.

    The accuracy is the mean per-class accuracy over ``classes`` (all
    classes by default; on a balanced test set that is the top-1 accuracy).
    Each resample draws seeds with replacement and, independently, the
    images of every class with replacement within the class; the same image
    draw is used for both methods and every seed (the test set is one sample
    shared by all runs).

    Args:
        pred_a (np.ndarray): ``(S, M)`` predictions of method A, one row per
            seed, one column per test image.
        pred_b (np.ndarray): ``(S, M)`` predictions of method B, same seeds.
        gt (np.ndarray): ``(M,)`` true labels.
        classes (Sequence[int], optional): The classes of the group.
        n_boot (int): Resamples. Defaults to 10000.
        level (float): Coverage. Defaults to 0.95.
        seed (int): Seed of the resampling. Defaults to 0.
        class_mask (np.ndarray, optional): ``(S, K)`` booleans, the classes
            of the group *per seed*, when the group differs between seeds
            (runs with permuted class orders); not with ``classes``.

    Returns:
        dict: As :func:`paired_bootstrap` (``wins``, ``losses`` and ``sd``
        from the unresampled per-seed differences).
    """
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    gt = np.asarray(gt)
    if pred_a.shape != pred_b.shape or pred_a.ndim != 2 or \
            pred_a.shape[1] != len(gt):
        raise ValueError(f'Need (S, M) predictions of both methods and (M,) '
                         f'labels, got {pred_a.shape}, {pred_b.shape} and '
                         f'{gt.shape}.')
    num_seeds = len(pred_a)
    if class_mask is None:
        classes = np.unique(gt) if classes is None else np.asarray(classes)
        member = np.ones((num_seeds, len(classes)))
    elif classes is not None:
        raise ValueError('Give the group as classes (the same for every '
                         'seed) or as class_mask (per seed), not both.')
    else:
        class_mask = np.asarray(class_mask, dtype=bool)
        if class_mask.ndim != 2 or len(class_mask) != num_seeds:
            raise ValueError(f'class_mask must be (S, K) booleans with S = '
                             f'{num_seeds} seeds, got shape '
                             f'{class_mask.shape}.')
        classes = np.flatnonzero(class_mask.any(axis=0))
        member = class_mask[:, classes].astype(np.float64)
    sizes = member.sum(axis=1)
    if (sizes == 0).any():
        raise ValueError(f'The group has no class at seeds (rows) '
                         f'{np.flatnonzero(sizes == 0).tolist()}.')
    hits_a = pred_a == gt
    hits_b = pred_b == gt
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, num_seeds, size=(n_boot, num_seeds))
    # (n_boot, S) per-class accuracy differences, summed over each seed's
    # classes (member is 0/1: a sum over a fixed group is unchanged).
    total = np.zeros((n_boot, num_seeds))
    observed = np.zeros(num_seeds)
    for j, c in enumerate(classes):
        images = np.flatnonzero(gt == c)
        if len(images) == 0:
            raise ValueError(f'Class {c} has no test image.')
        diff = (hits_a[:, images].astype(np.float64) -
                hits_b[:, images])  # (S, M_c)
        observed += member[:, j] * diff.mean(axis=1)
        # Per resample: mean over the drawn images of the class, per seed.
        draws = rng.integers(0, len(images), size=(n_boot, len(images)))
        total += diff[:, draws].mean(axis=2).T * member[:, j]
    per_seed = 100.0 * total / sizes
    means = np.take_along_axis(per_seed, seed_draws, axis=1).mean(axis=1)
    return _summary(100.0 * observed / sizes, means, level)


def _summary(diff: np.ndarray, means: np.ndarray,
             level: float) -> Dict[str, float]:
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return dict(
        mean=float(diff.mean()),
        lo=float(lo),
        hi=float(hi),
        n=int(len(diff)),
        wins=int((diff > 0).sum()),
        losses=int((diff < 0).sum()),
        sd=float(diff.std(ddof=1)) if len(diff) > 1 else 0.0)


def verdict(ci: Dict[str, float],
            higher: str = 'higher',
            lower: str = 'lower',
            unresolved: str = 'not resolved') -> str:
    """What an interval of ``a - b`` supports, in words: ``higher`` when it
    lies above zero, ``lower`` when below, ``unresolved`` when it contains
    zero (e.g. ``verdict(ci, 'CE faster', 'DR faster')`` for a difference of
    step counts DR - CE)."""
    if ci['lo'] > 0:
        return higher
    if ci['hi'] < 0:
        return lower
    return unresolved


def format_ci(ci: Dict[str, float], digits: int = 1) -> str:
    """``'+1.2 [-0.3, +2.8]'``."""
    return (f"{ci['mean']:+.{digits}f} [{ci['lo']:+.{digits}f}, "
            f"{ci['hi']:+.{digits}f}]")
