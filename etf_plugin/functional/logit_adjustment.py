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

from .long_tail import check_class_counts


def log_prior(class_counts: Union[Sequence[int], np.ndarray, torch.Tensor],
              num_classes: Optional[int] = None) -> torch.Tensor:
    """Log of the class prior ``log(n_k / sum_j n_j)`` from training counts.

    Args:
        class_counts (Sequence[int] | np.ndarray | torch.Tensor): Training
            samples of every class, indexed by class, checked by
            :func:`~etf_plugin.functional.long_tail.check_class_counts`.
            Every count must be positive: a class without training samples
            has ``log(0) = -inf``, which no adjustment can use.
        num_classes (int, optional): Number of classes of the model; the
            counts must have exactly this many entries. Defaults to None (no
            check).

    Returns:
        torch.Tensor: ``(K,)`` float64 log prior.
    """
    counts = check_class_counts(
        class_counts, num_classes, positive=True,
        owner='The class prior').astype(np.float64)
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
