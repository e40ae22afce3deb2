"""Logit adjustment (Menon et al., ICLR 2021): the one place its formula is
written.

With ``pi`` the training class prior (``pi_k = n_k / sum_j n_j``), the
logit-adjusted loss is cross-entropy on ``f(x) + tau * log(pi)``, and the
post-hoc correction of a model trained with plain cross-entropy predicts
``argmax_k f_k(x) - tau * log(pi_k)``. Both are :func:`adjust_logits`, with
``tau`` and ``-tau`` respectively.
"""
from typing import Optional, Sequence, Union

import numpy as np
import torch


def log_prior(class_counts: Union[Sequence[int], np.ndarray, torch.Tensor],
              num_classes: Optional[int] = None) -> torch.Tensor:
    """Log of the class prior ``log(n_k / sum_j n_j)`` from training counts.

    Args:
        class_counts (Sequence[int] | np.ndarray | torch.Tensor): Training
            samples of every class, indexed by class. Every count must be
            positive: a class without training samples has ``log(0) = -inf``,
            which no adjustment can use.
        num_classes (int, optional): Number of classes of the model; the
            counts must have exactly this many entries. Defaults to None (no
            check).

    Returns:
        torch.Tensor: ``(K,)`` float64 log prior.
    """
    if isinstance(class_counts, torch.Tensor):
        class_counts = class_counts.detach().cpu().numpy()
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f'class_counts must be a non-empty 1-D list of '
                         f'per-class training counts, got shape '
                         f'{counts.shape}.')
    if num_classes is not None and len(counts) != num_classes:
        raise ValueError(
            f'The class prior has {len(counts)} entries but the model has '
            f'{num_classes} classes: give one training count per class '
            f'(entry k is class k).')
    bad = np.flatnonzero(~(counts > 0) | ~np.isfinite(counts))
    if len(bad):
        shown = ', '.join(f'class {k} has {counts[k]:g}' for k in bad[:10])
        more = f' and {len(bad) - 10} more' if len(bad) > 10 else ''
        raise ValueError(
            f'Every class needs a positive training count for a log prior: '
            f'{shown}{more}. Drop classes without training samples, or fix '
            f'the counts.')
    return torch.from_numpy(np.log(counts / counts.sum()))


def adjust_logits(logits: torch.Tensor, log_prior: torch.Tensor,
                  tau: float) -> torch.Tensor:
    """``logits + tau * log_prior``, broadcast over the samples.

    Use ``tau > 0`` for the logit-adjusted training loss and ``-tau`` for the
    post-hoc correction of a plainly trained model.

    Args:
        logits (torch.Tensor): ``(N, K)`` class scores.
        log_prior (torch.Tensor): ``(K,)`` log class prior, see
            :func:`log_prior`.
        tau (float): Scale of the adjustment; 0 returns ``logits`` unchanged.

    Returns:
        torch.Tensor: ``(N, K)`` adjusted scores, dtype and device of
        ``logits``.
    """
    if logits.shape[-1] != log_prior.numel():
        raise ValueError(
            f'The logits have {logits.shape[-1]} classes but the class prior '
            f'has {log_prior.numel()} entries: give one training count per '
            f'class of the model.')
    return logits + tau * log_prior.to(logits)
