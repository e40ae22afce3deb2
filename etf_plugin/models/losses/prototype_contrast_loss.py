"""``PrototypeContrastLoss``: class prototypes as anchors, other-class batch
samples as negatives."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS

from etf_plugin.functional.prototype_contrast import prototype_contrast_loss
from .utils import check_labels_once


@MODELS.register_module()
class PrototypeContrastLoss(nn.Module):
    """Prototype-contrast loss of Koromilas et al. (ICML 2026,
    arXiv 2605.20302).

    For a sample ``i`` of class ``y``, ``-log(exp(w_y^T u_i / tau) / sum_j
    exp(w_y^T u_j / tau))``, ``j`` over the batch samples of the other
    classes, with unit features ``u`` and unit prototypes ``w`` (see
    :func:`etf_plugin.functional.prototype_contrast_loss`). Its class
    attribute ``takes_cosines = True`` makes :class:`ETFHead` (fixed
    prototypes) and :class:`CosineClsHead` (learnable prototypes) pass it the
    ``(N, K)`` cosines instead of scaled logits, so the head's
    ``logit_scale`` only affects prediction::

        head=dict(type='CosineClsHead', num_classes=10, in_channels=64,
                  loss=dict(type='PrototypeContrastLoss', tau=0.1))

    A sample has no negative only when the whole batch is of its class: the
    loss of such a batch is 0, with no gradient, not NaN. Negatives come
    from the local batch: under distributed training each rank contrasts
    with its own samples.

    It needs hard labels: the negatives are defined by class membership,
    which Mixup/CutMix targets do not give.

    Args:
        tau (float): Temperature, > 0. Defaults to 0.1.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    takes_cosines = True

    def __init__(self,
                 tau: float = 0.1,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__()
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or \
                not 0 < tau < float('inf'):
            raise ValueError(f'tau must be a finite number > 0, got {tau!r}.')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"Unknown reduction {reduction!r}; choose "
                             f"'none', 'mean' or 'sum'.")
        self.tau = float(tau)
        self.reduction = reduction
        self.loss_weight = loss_weight

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
            cls_score (torch.Tensor): ``(N, K)`` cosines of the normalised
                features with the normalised prototypes.
            label (torch.Tensor): ``(N,)`` integer labels.
            weight (torch.Tensor, optional): ``(N,)`` sample weights.
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.
            feat_norm (torch.Tensor, optional): Given by a head with
                un-normalised features, which this loss refuses.

        Returns:
            torch.Tensor: The weighted loss.
        """
        if feat_norm is not None:
            raise ValueError(
                'PrototypeContrastLoss needs cosines, but the head passed '
                'un-normalised dot products: build ETFHead with '
                'normalize=True (its default).')
        if label.dim() != 1:
            raise ValueError(
                'PrototypeContrastLoss needs hard (N,) labels: its negatives '
                'are the batch samples of other classes, which soft targets '
                '(Mixup, CutMix) do not define. Remove the batch augments '
                '(in the config: model=dict(train_cfg=None)).')
        check_labels_once(self, label, cls_score.shape[1])
        loss = prototype_contrast_loss(cls_score, label, self.tau)
        if weight is not None:
            weight = weight.reshape(-1).to(loss.dtype)
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction_override or self.reduction, avg_factor)
