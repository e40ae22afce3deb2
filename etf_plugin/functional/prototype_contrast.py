"""Prototype-contrast loss (Koromilas et al., ICML 2026, arXiv 2605.20302):
the one place its formula is written.

Features ``u_i`` and class prototypes ``w_k`` are unit vectors, so
``c_jk = w_k^T u_j`` is the ``(N, K)`` matrix of cosines. For a sample ``i``
of class ``y`` the prototype ``w_y`` is the anchor, ``u_i`` its positive and
the batch samples ``j`` of another class its negatives:

    l_i = -log( exp(c_iy / tau) / sum_{j : y_j != y} exp(c_jy / tau) )
        = -c_iy / tau + logsumexp_{j : y_j != y} (c_jy / tau)

The positive is not in the denominator, so ``l_i`` can be negative. The
cosines of the negatives with ``w_y`` are column ``y`` of the cosine matrix.
"""
import torch


def prototype_contrast_loss(cosines: torch.Tensor, labels: torch.Tensor,
                            tau: float) -> torch.Tensor:
    """Per-sample prototype-contrast loss.

    A sample has no negative only when every sample of the batch is of its
    class; the loss is then undefined, and returned as 0 with a zero
    gradient (never NaN or inf), so such a batch simply does not train.
    Everything is computed with masks (no host read), so it compiles with
    ``torch.compile(..., fullgraph=True)``.

    Args:
        cosines (torch.Tensor): ``(N, K)`` cosines of the batch's normalised
            features with the normalised class prototypes.
        labels (torch.Tensor): ``(N,)`` integer labels in ``[0, K)``.
        tau (float): Temperature, > 0.

    Returns:
        torch.Tensor: ``(N,)`` losses, 0 where undefined.
    """
    if cosines.dim() != 2 or labels.dim() != 1 or \
            labels.shape[0] != cosines.shape[0]:
        raise ValueError(
            f'prototype_contrast_loss takes (N, K) cosines and (N,) integer '
            f'labels, got {tuple(cosines.shape)} and {tuple(labels.shape)}.')
    scaled = cosines / tau
    positive = scaled.gather(1, labels[:, None]).squeeze(1)
    # Row i, column j: the cosine of sample j with the prototype of i's class.
    to_anchor = scaled.t().index_select(0, labels)
    negative = labels[:, None] != labels[None, :]
    has_negatives = negative.any(dim=1)
    # logsumexp of a row of -inf is -inf with a zero (not NaN) gradient.
    masked = to_anchor.masked_fill(~negative, float('-inf'))
    loss = torch.logsumexp(masked, dim=1) - positive
    return torch.where(has_negatives, loss, torch.zeros_like(loss))
