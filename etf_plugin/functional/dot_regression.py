"""The dot-regression (DR) loss: the one place its formula is written.

For a feature ``h`` of class ``y`` and fixed unit class vectors ``w_k`` (the
rows of a simplex ETF), Yang et al. (NeurIPS 2022) regress the dot product
onto its value at perfect alignment::

    L_DR = 1/2 * (w_y^T h - ||h||)^2 / ||h||        (||h|| not differentiated)

With L2-normalised features (``||h|| = 1``) this is the paper's
``1/2 (w_y^T h_hat - 1)^2``. Its gradient w.r.t. ``h`` is
``(w_y^T h / ||h|| - 1) w_y``: a pull along the own class vector only, without
cross-entropy's push away from the other classes.
"""
from typing import Optional

import torch

EPS = 1e-8


def dot_regression_loss(logits: torch.Tensor,
                        target: torch.Tensor,
                        feat_norm: Optional[torch.Tensor] = None,
                        class_balanced: bool = False,
                        class_counts: Optional[torch.Tensor] = None,
                        class_weight: Optional[torch.Tensor] = None,
                        norm_reg: float = 0.0,
                        weight: Optional[torch.Tensor] = None,
                        reduction: str = 'mean',
                        avg_factor: Optional[float] = None) -> torch.Tensor:
    """Dot-regression loss on dot products with unit class vectors.

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
        norm_reg (float): Weight of the ``mean ||h||`` penalty of the
            ImageNet-LT variant (0.01 there). Needs ``feat_norm``.
        weight (torch.Tensor, optional): ``(N,)`` per-sample weights.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): Denominator of the mean.

    Returns:
        torch.Tensor: The loss (a scalar unless ``reduction='none'``).
    """
    if logits.dim() != 2:
        raise ValueError(f'logits must be (N, K), got {tuple(logits.shape)}')
    num_classes = logits.shape[1]
    probs = target_distribution(target, num_classes, logits.dtype)

    if feat_norm is None:
        if norm_reg:
            raise ValueError('norm_reg needs the feature norms (feat_norm).')
        length = logits.new_ones(logits.shape[0], 1)
    else:
        length = feat_norm.detach().reshape(-1, 1).clamp(min=EPS)
    per_class = 0.5 * (logits - length)**2 / length  # (N, K)

    if class_balanced and class_weight is not None:
        raise ValueError('Give class_balanced=True (per-batch weights) or '
                         'class_weight (fixed weights), not both.')
    if class_weight is not None:
        if class_weight.shape != (num_classes, ):
            raise ValueError(f'class_weight must have shape ({num_classes},), '
                             f'got {tuple(class_weight.shape)}.')
        probs = probs * class_weight.to(probs)
    if class_balanced:
        if class_counts is None:
            class_counts = hard_label_counts(target, num_classes)
        probs = probs * class_balanced_weights(class_counts).to(probs)
    loss = (per_class * probs).sum(dim=1)
    if norm_reg:
        loss = loss + norm_reg * feat_norm.reshape(-1)
    if weight is not None:
        loss = loss * weight.reshape(-1).to(loss.dtype)
    return reduce_loss(loss, reduction, avg_factor)


def reduce_loss(loss: torch.Tensor,
                reduction: str = 'mean',
                avg_factor: Optional[float] = None) -> torch.Tensor:
    """Reduce per-sample losses the OpenMMLab way: ``avg_factor`` replaces
    the sample count as the denominator of ``'mean'``.

    Kept here rather than imported from mmpretrain so that the functional
    package depends on torch alone.

    Args:
        loss (torch.Tensor): Per-sample losses.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor (float, optional): Denominator of the mean.

    Returns:
        torch.Tensor: The reduced loss.
    """
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f'Unknown reduction {reduction!r}.')
    if avg_factor is not None and reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum".')
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if avg_factor is None:
        return loss.mean()
    # Same epsilon as mmpretrain/mmdet, so an avg_factor of 0 gives 0.
    return loss.sum() / (avg_factor + torch.finfo(torch.float32).eps)


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

    Args:
        target (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.

    Returns:
        torch.Tensor: ``(K,)`` counts, float32.
    """
    labels = target.argmax(dim=1) if target.dim() == 2 else target
    return torch.bincount(labels.reshape(-1).long(),
                          minlength=num_classes).float()


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
    return torch.where(present, gamma / class_counts.clamp(min=EPS),
                       torch.ones_like(class_counts))


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
        class_counts (Sequence[int] | torch.Tensor): ``(K,)`` training
            samples per class.
        power (float): The exponent ``q``, in ``[0, 1]``.

    Returns:
        torch.Tensor: ``(K,)`` float32 weights.
    """
    if not 0 <= power <= 1:
        raise ValueError(f'power must lie in [0, 1], got {power}.')
    counts = torch.as_tensor(class_counts, dtype=torch.float64).reshape(-1)
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f'class_counts must be non-negative with a positive '
                         f'total, got {counts.tolist()}.')
    present = counts > 0
    raw = torch.where(present, counts.clamp(min=1).pow(-power),
                      torch.zeros_like(counts))
    raw = raw * counts.sum() / (counts * raw).sum()
    return torch.where(present, raw, torch.ones_like(counts)).float()


def target_distribution(target: torch.Tensor, num_classes: int,
                        dtype: torch.dtype) -> torch.Tensor:
    """Turn integer labels or soft targets into an ``(N, K)`` distribution,
    rejecting labels outside ``[0, num_classes)``.

    Args:
        target (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
        num_classes (int): Number of classes ``K``.
        dtype (torch.dtype): Dtype of the result.

    Returns:
        torch.Tensor: ``(N, K)`` rows of target weights.
    """
    if target.dim() == 2:
        if target.shape[1] != num_classes:
            raise ValueError(f'Soft targets have {target.shape[1]} classes, '
                             f'the logits {num_classes}.')
        return target.to(dtype)
    target = target.reshape(-1).long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        bad = target[(target < 0) | (target >= num_classes)][0].item()
        raise ValueError(
            f'Label {bad} is outside [0, {num_classes}): check num_classes '
            f'against the dataset.')
    return torch.nn.functional.one_hot(target, num_classes).to(dtype)
