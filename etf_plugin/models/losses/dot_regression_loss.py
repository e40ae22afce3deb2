from typing import Optional

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size, is_distributed
from mmpretrain.registry import MODELS

from etf_plugin.functional import dot_regression_loss, target_distribution


@MODELS.register_module()
class DotRegressionLoss(nn.Module):
    """Dot-regression loss of Yang et al. (NeurIPS 2022).

    ``1/2 (w_y^T h - ||h||)^2 / ||h||`` on the dot products of features with
    fixed unit class vectors, i.e. ``1/2 (cos(h, w_y) - 1)^2`` for normalised
    features (see :func:`etf_plugin.functional.dot_regression_loss`). It takes
    ``(cls_score, label)`` like mmpretrain's ``CrossEntropyLoss``, so any head
    that outputs cosine logits can use it; :class:`ETFHead` passes the
    unscaled dot products.

    The authors' released training differs from the paper's formula in two
    ways that are options here, off by default:

    - ``class_balanced``: per-batch class-balanced target lengths. Each
      sample of class ``k`` weighs ``gamma / c_k`` (``c_k`` its count in the
      batch, ``gamma`` the batch size over the number of classes present),
      so every class present in a batch gets the same total weight. Under
      distributed training the counts are summed over all ranks, so the
      weights are those of the global batch.
    - ``norm_reg``: the ImageNet-LT variant trains un-normalised features
      (``ETFHead(normalize=False)``); the loss then uses the detached norms
      and adds ``norm_reg * mean ||h||`` (0.01 there).

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        class_balanced (bool): Use the per-batch class-balanced lengths.
            Defaults to False.
        norm_reg (float): Weight of the feature-norm penalty; needs
            ``feat_norm`` in ``forward``. Defaults to 0.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 class_balanced: bool = False,
                 norm_reg: float = 0.0):
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}.')
        if norm_reg < 0:
            raise ValueError(f'norm_reg must be >= 0, got {norm_reg}.')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.class_balanced = class_balanced
        self.norm_reg = norm_reg

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                feat_norm: Optional[torch.Tensor] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): ``(N, K)`` dot products with the unit
                class vectors (cosines for normalised features).
            label (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
            weight (torch.Tensor, optional): ``(N,)`` sample weights.
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.
            feat_norm (torch.Tensor, optional): ``(N,)`` feature norms for
                un-normalised features.

        Returns:
            torch.Tensor: The weighted loss.
        """
        reduction = reduction_override or self.reduction
        class_counts = None
        if self.class_balanced and is_distributed() and get_world_size() > 1:
            probs = target_distribution(label, cls_score.shape[1],
                                        torch.float32)
            class_counts = probs.sum(dim=0)
            all_reduce(class_counts)
        loss = dot_regression_loss(
            cls_score,
            label,
            feat_norm=feat_norm,
            class_balanced=self.class_balanced,
            class_counts=class_counts,
            norm_reg=self.norm_reg,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor)
        return self.loss_weight * loss
