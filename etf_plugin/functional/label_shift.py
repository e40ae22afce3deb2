"""Accuracy under shifted (long-tailed) test label distributions, computed
from a balanced test set without new data.

Test-agnostic long-tail evaluation (LADE, Hong et al. 2021; SADE, Zhang et
al. 2022) tests a model on label distributions that are themselves
long-tailed: *forward* (the training set's head classes are also frequent
at test time) or *backward* (the order inverted), at several imbalance
ratios. Under label shift the images of a class do not change, only how
often each class occurs, so the accuracy under a test prior ``p`` is exactly

    acc(p) = sum_k p_k * a_k,

``a_k`` the accuracy on the test images of class ``k``. The per-class
accuracies of the balanced test set are unbiased estimates of ``a_k``, so
``acc(p)`` needs no resampled test set (and has none of its sampling noise).

Target priors: classes are ranked by *training* count, largest first; the
class of rank ``r`` (of ``K``) gets ``p ∝ rho ** (-r / (K - 1))``, the
exponential profile of CIFAR-LT without the rounding to whole images. ``rho
> 1`` is forward with ``p_max / p_min = rho``, ``rho < 1`` backward with
ratio ``1 / rho``, ``rho = 1`` uniform (the balanced test set itself).
Classes with equal training counts share the mean prior of their ranks, so
the result does not depend on how ties are ordered.
"""
from typing import Sequence, Union

import numpy as np
import torch

# 50 ... 2 forward, uniform, 2 ... 50 backward: SADE's test distributions.
DEFAULT_SHIFT_RATIOS = (50, 25, 10, 5, 2, 1, 1 / 2, 1 / 5, 1 / 10, 1 / 25,
                        1 / 50)

ArrayLike = Union[Sequence[float], np.ndarray, torch.Tensor]


def _as_numpy(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def long_tail_test_prior(class_counts: ArrayLike, ratio: float) -> np.ndarray:
    """The forward (``ratio > 1``), uniform (``1``) or backward (``< 1``)
    long-tailed test prior of the module docstring.

    Args:
        class_counts (Sequence[int] | np.ndarray | torch.Tensor): Training
            samples per class; only their order is used.
        ratio (float): ``p`` of the largest training class over ``p`` of the
            smallest one.

    Returns:
        np.ndarray: ``(K,)`` float64 prior indexed by class, summing to 1.
    """
    counts = _as_numpy(class_counts)
    if counts.size == 0:
        raise ValueError('class_counts must hold one count per class.')
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f'The test imbalance ratio must be a positive '
                         f'number (e.g. 50 forward, 1/50 backward), got '
                         f'{ratio}.')
    num_classes = len(counts)
    # Stable: equal counts keep class order (their priors are averaged next).
    order = np.argsort(-counts, kind='stable')
    ranks = np.arange(num_classes) / max(num_classes - 1, 1)
    by_rank = float(ratio)**(-ranks)
    prior = np.empty(num_classes)
    prior[order] = by_rank
    _, tie_group = np.unique(counts, return_inverse=True)
    tie_group = tie_group.reshape(-1)
    group_mean = np.bincount(tie_group, weights=prior) / np.bincount(tie_group)
    prior = group_mean[tie_group]
    return prior / prior.sum()


def shifted_accuracy(per_class_accuracy: ArrayLike,
                     prior: ArrayLike) -> float:
    """``sum_k p_k * a_k``: the accuracy under the test prior ``p``.

    Args:
        per_class_accuracy (Sequence[float] | np.ndarray | torch.Tensor):
            ``a_k``, in any unit (fraction or percent); NaN for a class the
            test set does not hold.
        prior (Sequence[float] | np.ndarray | torch.Tensor): ``p_k``.

    Returns:
        float: The accuracy, in the unit of ``per_class_accuracy``. Classes
        without an accuracy are left out and the prior is renormalised over
        the others; NaN if none has one.
    """
    accuracy = _as_numpy(per_class_accuracy)
    prior = _as_numpy(prior)
    if accuracy.shape != prior.shape:
        raise ValueError(f'{len(accuracy)} per-class accuracies but '
                         f'{len(prior)} prior entries: give one per class.')
    if (prior < 0).any() or not np.isfinite(prior).all():
        raise ValueError('The test prior must be finite and non-negative.')
    known = ~np.isnan(accuracy)
    mass = prior[known].sum()
    if mass == 0:
        return float('nan')
    return float((prior[known] * accuracy[known]).sum() / mass)


def shift_name(ratio: float) -> str:
    """``'forward_50'``, ``'uniform'`` or ``'backward_50'`` (for 1/50).

    Args:
        ratio (float): The test imbalance ratio, see
            :func:`long_tail_test_prior`.
    """
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f'The test imbalance ratio must be a positive '
                         f'number, got {ratio}.')
    if np.isclose(ratio, 1):
        return 'uniform'
    if ratio > 1:
        return f'forward_{ratio:.6g}'
    return f'backward_{1 / ratio:.6g}'
