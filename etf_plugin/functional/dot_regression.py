"""The dot-regression (DR) loss: the one place its formula is written.

For a feature ``h`` of class ``y`` and fixed unit class vectors ``w_k`` (the
rows of a simplex ETF), Yang et al. (NeurIPS 2022) regress the dot product
onto its value at perfect alignment::

    L_DR = 1/2 * (w_y^T h - ||h||)^2 / ||h||        (||h|| not differentiated)

With L2-normalised features (``||h|| = 1``) this is the paper's
``1/2 (w_y^T h_hat - 1)^2``. Its gradient w.r.t. ``h`` is
``(w_y^T h / ||h|| - 1) w_y``: a pull along the own class vector only, without
cross-entropy's push away from the other classes.

Nothing here reads a tensor's values on the host (no ``.item()``, no
data-dependent Python branch), so the functions run inside a training step
without stalling an accelerator and trace under ``torch.compile(...,
fullgraph=True)``. Label values are checked by :func:`check_labels`, which
callers run where it is free (e.g. once, on the first batch); an invalid
label later in a run is caught by the indexing kernels themselves (an
``IndexError`` on the CPU, a device-side assertion on a GPU).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .long_tail import check_class_counts

EPS = 1e-8


def dot_regression_loss(logits: torch.Tensor,
                        target: torch.Tensor,
                        feat_norm: Optional[torch.Tensor] = None,
                        class_balanced: bool = False,
                        class_counts: Optional[torch.Tensor] = None,
                        class_weight: Optional[torch.Tensor] = None,
                        norm_reg: float = 0.0) -> torch.Tensor:
    """Per-sample dot-regression loss on dot products with unit class
    vectors.

    Like ``F.cross_entropy(..., reduction='none')``, it returns one loss per
    sample; sample weights and the reduction are the caller's (the loss
    modules use MMPretrain's ``weight_reduce_loss``).

    Args:
        logits (torch.Tensor): ``(N, K)`` dot products ``w_k^T h_i`` with unit
            class vectors; cosine similarities when the features are
            L2-normalised.
        target (torch.Tensor): ``(N,)`` integer labels in ``[0, K)``, or
            ``(N, K)`` soft targets (Mixup/CutMix ``gt_score``); a soft target
            gives the convex combination of the per-class DR terms.
        feat_norm (torch.Tensor, optional): ``(N,)`` feature norms ``||h_i||``
            when the features are not normalised (the authors' ImageNet-LT
            variant). The regression term uses them detached; ``norm_reg``
            uses them with their gradient. ``None`` means unit features.
        class_balanced (bool): Apply the per-batch class-balanced target
            lengths of the authors' released code: the term of class ``k``
            weighs ``gamma / c_k``, ``c_k`` the count of class ``k`` among the
            batch's hard labels (:func:`hard_label_counts`) and ``gamma`` =
            batch size / number of classes present, so every class present
            gets the same total weight; absent classes weigh 1, as in the
            authors' code. Defaults to False (the paper's unweighted loss).
        class_counts (torch.Tensor, optional): ``(K,)`` hard-label counts to
            use instead of this batch's, e.g. summed over all ranks.
        class_weight (torch.Tensor, optional): ``(K,)`` fixed per-class
            weights of the terms, e.g. the dataset-level tempered weights of
            :func:`tempered_class_weights`. Not together with
            ``class_balanced``. Defaults to None (every class weighs 1).
        norm_reg (float): Weight of the ``||h||`` penalty of the ImageNet-LT
            variant (0.01 there). Needs ``feat_norm``.

    Returns:
        torch.Tensor: ``(N,)`` losses.
    """
    if logits.dim() != 2:
        raise ValueError(f'logits must be (N, K), got {tuple(logits.shape)}')
    if feat_norm is None and norm_reg:
        raise ValueError('norm_reg needs the feature norms (feat_norm).')
    num_classes = logits.shape[1]
    class_weight = resolve_class_weight(target, num_classes, class_balanced,
                                        class_counts, class_weight)

    if target.dim() == 2:
        # Soft targets: every class's term, weighed by the target.
        check_soft_target(target, num_classes)
        probs = target.to(logits.dtype)
        if class_weight is not None:
            probs = probs * class_weight.to(probs)
        loss = (_dr_terms(logits, feat_norm, per_class=True) * probs).sum(1)
    else:
        # Hard labels: only the own class's term, gathered.
        labels = target.reshape(-1, 1)
        loss = _dr_terms(logits.gather(1, labels).reshape(-1), feat_norm)
        if class_weight is not None:
            loss = loss * class_weight.to(loss)[labels.reshape(-1)]
    if norm_reg:
        loss = loss + norm_reg * feat_norm.reshape(-1)
    return loss


def resolve_class_weight(target: torch.Tensor,
                         num_classes: int,
                         class_balanced: bool = False,
                         class_counts: Optional[torch.Tensor] = None,
                         class_weight: Optional[torch.Tensor] = None
                         ) -> Optional[torch.Tensor]:
    """The ``(K,)`` per-class weights of the DR terms: the per-batch
    class-balanced ones (:func:`class_balanced_weights` of ``class_counts``,
    or of the batch's :func:`hard_label_counts`) when ``class_balanced``,
    else ``class_weight`` as given (None: every class weighs 1). The
    arguments are those of :func:`dot_regression_loss`."""
    if class_balanced and class_weight is not None:
        raise ValueError('Give class_balanced=True (per-batch weights) or '
                         'class_weight (fixed weights), not both.')
    if class_weight is not None and class_weight.shape != (num_classes, ):
        raise ValueError(f'class_weight must have shape ({num_classes},), '
                         f'got {tuple(class_weight.shape)}.')
    if not class_balanced:
        return class_weight
    if class_counts is None:
        class_counts = hard_label_counts(target, num_classes)
    return class_balanced_weights(class_counts)


# nll_loss's ignore_index, set to a value no label takes: a label of -100
# (its default) is out of range like any other, not silently skipped.
_NO_IGNORED_LABEL = -2**63


class _HardLabelDotRegression(torch.autograd.Function):
    """See :func:`dot_regression_sum`."""

    @staticmethod
    def forward(ctx, cosines, labels, scale, class_weight):
        # nll_loss picks each sample's own cosine, negated: -c.
        neg_cos, total_weight = torch.ops.aten.nll_loss_forward(
            cosines, labels, None, 0, _NO_IGNORED_LABEL)
        # rsub(a, b, alpha) = b - alpha * a: (1 - c) / 2 and the derivative
        # of the loss w.r.t. -c, scale * (1 - c), one operator each.
        half_residual = torch.rsub(neg_cos, 0.5, alpha=-0.5)
        slope = torch.rsub(neg_cos, scale, alpha=-scale)
        if class_weight is not None:
            loss = torch.dot(half_residual, slope * class_weight[labels])
        else:
            loss = torch.dot(half_residual, slope)
        ctx.save_for_backward(cosines, labels, class_weight, total_weight,
                              slope)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        cosines, labels, class_weight, total_weight, slope = \
            ctx.saved_tensors
        # nll_loss's backward puts -class_weight[y] * slope * grad at
        # (i, y_i) and zeros elsewhere: the gradient w.r.t. the cosines.
        grad_cosines = torch.ops.aten.nll_loss_backward(
            slope * grad, cosines, labels, class_weight, 0,
            _NO_IGNORED_LABEL, total_weight)
        return grad_cosines, None, None, None


def dot_regression_sum(cosines: torch.Tensor,
                       labels: torch.Tensor,
                       scale: float = 1.0,
                       class_weight: Optional[torch.Tensor] = None
                       ) -> torch.Tensor:
    """``scale * sum_i w_{y_i} 1/2 (cos_{i, y_i} - 1)^2``: the summed
    dot-regression loss of unit features with hard labels, forward and
    backward in a few operators each (the fused path of
    ``DotRegressionLoss``).

    It equals ``scale * (dot_regression_loss(cosines, labels, class_weight=
    class_weight)).sum()`` up to rounding; ``scale`` carries the loss weight
    and the mean's denominator. Labels are checked where that is free (see
    :func:`check_labels`); an out-of-range one later stops the indexing
    kernel (an ``IndexError`` on the CPU, a device-side assertion on a
    GPU), -100 included.

    Args:
        cosines (torch.Tensor): ``(N, K)`` cosines with unit class vectors.
        labels (torch.Tensor): ``(N,)`` integer labels in ``[0, K)``.
        scale (float): Factor of the sum. Defaults to 1.
        class_weight (torch.Tensor, optional): ``(K,)`` weights of the
            classes' terms, of the cosines' dtype and device.

    Returns:
        torch.Tensor: The scalar loss.
    """
    return _HardLabelDotRegression.apply(cosines, labels, scale,
                                         class_weight)


def _dr_terms(dots: torch.Tensor, feat_norm: Optional[torch.Tensor],
              per_class: bool = False) -> torch.Tensor:
    """``1/2 (dots - ||h||)^2 / ||h||``, with unit norms when ``feat_norm``
    is None; ``per_class`` broadcasts the norms over the ``(N, K)`` dots."""
    # mse_loss: one operator forward and one backward for (dots - t)^2.
    if feat_norm is None:
        return 0.5 * F.mse_loss(dots, torch.ones_like(dots), reduction='none')
    length = feat_norm.detach().reshape(-1).clamp(min=EPS)
    if per_class:
        length = length[:, None]
    return 0.5 * F.mse_loss(
        dots, length.expand_as(dots), reduction='none') / length


def hard_label_counts(target: torch.Tensor,
                      num_classes: int) -> torch.Tensor:
    """Per-class counts of a batch's hard labels, float ``(K,)``.

    Integer labels are counted as they are; soft targets by their argmax.
    Soft scores must not be summed instead: label smoothing gives every
    class a small mass, so every class would look present, and an absent
    class would get a weight of about ``1/eps``. For label smoothing the
    argmax is the label. For MMPretrain's Mixup and CutMix (one mixing
    ratio per batch) it is, for every sample, the label of the same one of
    the two mixed images, and the second image's labels are a permutation
    of the batch: either way the counts are those of the un-mixed labels,
    which is what the authors count.

    Counted with ``index_add_`` rather than ``torch.bincount``, whose GPU
    kernel reads the largest label on the host first.

    Args:
        target (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.

    Returns:
        torch.Tensor: ``(K,)`` counts, float32.
    """
    labels = target.argmax(dim=1) if target.dim() == 2 else target
    labels = labels.reshape(-1)
    ones = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    return ones.new_zeros(num_classes).index_add_(0, labels, ones)


def class_balanced_weights(class_counts: torch.Tensor) -> torch.Tensor:
    """Per-class weights ``gamma / c_k`` that give every present class the
    same total weight ``gamma`` = total count / number of present classes.

    Absent classes get weight 1: in the authors' code their target length
    stays 1. Only soft targets (e.g. label smoothing) give them any mass.

    Args:
        class_counts (torch.Tensor): ``(K,)`` non-negative (soft) counts.

    Returns:
        torch.Tensor: ``(K,)`` weights.
    """
    present = class_counts > 0
    gamma = class_counts.sum() / present.sum().clamp(min=1)
    # The division by an absent class's 0 is never selected.
    return torch.where(present, gamma / class_counts, 1.0)


def tempered_class_weights(class_counts, power: float) -> torch.Tensor:
    """Dataset-level per-class weights ``w_k ∝ n_k^(-power)``.

    The fixed-weight counterpart of :func:`class_balanced_weights`: from the
    *training-set* counts ``n_k`` instead of one batch's. ``power = 0`` gives
    every class weight 1 (the paper's unweighted loss); ``power = 1`` gives
    every class the same total weight over the training set, the
    dataset-level version of the per-batch ``gamma / c_k``; values in between
    temper the re-weighting. The weights are normalised so that the mean
    weight of a training sample is 1 (``sum_k n_k w_k = sum_k n_k``), so the
    loss keeps the scale of the unweighted loss. Classes without a training
    sample get weight 1 (no label of theirs can occur).

    Args:
        class_counts (Sequence[int] | np.ndarray | torch.Tensor): ``(K,)``
            training samples per class, checked by
            :func:`~etf_plugin.functional.long_tail.check_class_counts`.
        power (float): The exponent ``q``, in ``[0, 1]``.

    Returns:
        torch.Tensor: ``(K,)`` float32 weights.
    """
    if not 0 <= power <= 1:
        raise ValueError(f'power must lie in [0, 1], got {power}.')
    counts = torch.from_numpy(check_class_counts(class_counts)).double()
    if counts.sum() == 0:
        raise ValueError('tempered_class_weights needs at least one sample; '
                         'got only zero class counts.')
    present = counts > 0
    raw = torch.where(present, counts.clamp(min=1).pow(-power),
                      torch.zeros_like(counts))
    raw = raw * counts.sum() / (counts * raw).sum()
    return torch.where(present, raw, torch.ones_like(counts)).float()


def target_distribution(target: torch.Tensor, num_classes: int,
                        dtype: torch.dtype) -> torch.Tensor:
    """Turn integer labels or soft targets into an ``(N, K)`` distribution.

    Args:
        target (torch.Tensor): ``(N,)`` labels in ``[0, num_classes)`` or
            ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.
        dtype (torch.dtype): Dtype of the result.

    Returns:
        torch.Tensor: ``(N, K)`` rows of target weights.
    """
    if target.dim() == 2:
        check_soft_target(target, num_classes)
        return target.to(dtype)
    return F.one_hot(target.reshape(-1), num_classes).to(dtype)


def check_soft_target(target: torch.Tensor, num_classes: int) -> None:
    """Raise a ``ValueError`` unless the ``(N, K)`` soft targets have
    ``num_classes`` columns (a shape check: free, no host read)."""
    if target.shape[1] != num_classes:
        raise ValueError(f'Soft targets have {target.shape[1]} classes, '
                         f'the logits {num_classes}.')


def check_labels(target: torch.Tensor, num_classes: int) -> None:
    """Raise a ``ValueError`` naming the fix unless every integer label lies
    in ``[0, num_classes)`` (soft targets: their shape is checked).

    It reads the labels on the host, which waits for an accelerator to
    finish its queued work: call it where that is free, e.g. on the first
    batch only (the loss modules do), not on every training step.

    Args:
        target (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.
    """
    if target.dim() == 2:
        check_soft_target(target, num_classes)
        return
    labels = target.reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(
            f'Label {bad[0].item()} is outside [0, {num_classes}): check '
            f'num_classes against the dataset.')
