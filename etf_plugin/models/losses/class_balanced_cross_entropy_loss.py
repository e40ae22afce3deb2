"""``ClassBalancedCrossEntropyLoss``: cross-entropy with the per-batch
class-balanced weights of the released dot-regression code."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size, is_distributed
from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS

from etf_plugin.functional.dot_regression import (class_balanced_weights,
                                                  hard_label_counts,
                                                  target_distribution)
from .utils import check_labels_once


@MODELS.register_module()
class ClassBalancedCrossEntropyLoss(nn.Module):
    """Cross-entropy whose terms weigh ``gamma / c_k`` per batch.

    The control for ``DotRegressionLoss(class_balanced=True)``: the same
    weights (:func:`~etf_plugin.functional.dot_regression.class_balanced_weights`
    of the batch's hard-label counts,
    :func:`~etf_plugin.functional.dot_regression.hard_label_counts`; summed
    over ranks when distributed), applied to cross-entropy instead of the DR
    term, so that "fixed ETF + DR" can be told apart from "re-weighting".
    Every class present in a batch gets the same total weight ``gamma`` =
    batch size / number of classes present. Soft targets ``p`` give
    ``-sum_k w_k p_k log softmax(z)_k``, as the DR loss weighs its soft
    targets. The reduction is MMPretrain's (``avg_factor`` replaces the
    sample count of the mean).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean'):
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}.')
        self.loss_weight = loss_weight
        self.reduction = reduction

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): ``(N, K)`` logits.
            label (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
            weight (torch.Tensor, optional): ``(N,)`` sample weights.
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            torch.Tensor: The weighted loss.
        """
        if cls_score.dim() != 2:
            raise ValueError(f'cls_score must be (N, K), got '
                             f'{tuple(cls_score.shape)}.')
        num_classes = cls_score.shape[1]
        check_labels_once(self, label, num_classes)
        counts = hard_label_counts(label, num_classes)
        if is_distributed() and get_world_size() > 1:
            all_reduce(counts)
        class_weight = class_balanced_weights(counts).to(cls_score.dtype)
        if label.dim() == 2:
            probs = target_distribution(label, num_classes, cls_score.dtype)
            loss = -(probs * class_weight *
                     F.log_softmax(cls_score, dim=1)).sum(dim=1)
        else:
            label = label.reshape(-1)
            loss = F.cross_entropy(
                cls_score, label, reduction='none') * class_weight[label]
        if weight is not None:
            weight = weight.reshape(-1).to(loss.dtype)
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction_override or self.reduction, avg_factor)
