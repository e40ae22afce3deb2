from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_world_size, is_distributed
from mmpretrain.models.losses.utils import weight_reduce_loss
from mmpretrain.registry import MODELS

from etf_plugin.functional.dot_regression import (dot_regression_loss,
                                                  dot_regression_sum,
                                                  hard_label_counts,
                                                  resolve_class_weight,
                                                  tempered_class_weights)
from etf_plugin.utils.class_counts import ClassCountsConsumer
from ..utils.fused import check_fused, fused_for
from .utils import check_labels_once


@MODELS.register_module()
class DotRegressionLoss(ClassCountsConsumer, nn.Module):
    """Dot-regression loss of Yang et al. (NeurIPS 2022).

    ``1/2 (w_y^T h - ||h||)^2 / ||h||`` on the dot products of features with
    fixed unit class vectors, i.e. ``1/2 (cos(h, w_y) - 1)^2`` for normalised
    features (see :func:`etf_plugin.functional.dot_regression_loss`). It takes
    ``(cls_score, label)`` like mmpretrain's ``CrossEntropyLoss``, so any head
    that outputs cosine logits can use it. Its class attribute
    ``takes_cosines = True`` tells :class:`ETFHead` to pass the unscaled dot
    products (a loss of your own declares the same to get them). Its first
    batch's labels are checked on the host, later ones are not (see
    :func:`~etf_plugin.models.losses.utils.check_labels_once`).

    The authors' released training differs from the paper's formula in two
    ways that are options here, off by default:

    - ``class_balanced``: per-batch class-balanced target lengths. Each
      sample of class ``k`` weighs ``gamma / c_k`` (``c_k`` the count of
      hard labels ``k`` in the batch, ``gamma`` the batch size over the
      number of classes present), so every class present in a batch gets
      the same total weight. Soft targets (Mixup, CutMix, label smoothing)
      are counted by their argmax, i.e. the un-mixed labels (see
      :func:`~etf_plugin.functional.dot_regression.hard_label_counts`).
      Under distributed training the counts are summed over all ranks, so
      the weights are those of the global batch.
    - ``norm_reg``: the ImageNet-LT variant trains un-normalised features
      (``ETFHead(normalize=False)``); the loss then uses the detached norms
      and adds ``norm_reg * mean ||h||`` (0.01 there).

    A third option, ours, replaces the per-batch weights by fixed
    dataset-level ones: ``balance_power=q`` weighs class ``k`` by
    ``n_k^(-q)`` (normalised to a mean sample weight of 1, see
    :func:`~etf_plugin.functional.dot_regression.tempered_class_weights`),
    ``n_k`` the *training-set* count handed over by ``ClassCountsHook``
    (``class_counts`` / ``counts_file`` override it). ``q = 0`` is the plain
    loss, ``q = 1`` the dataset-level analogue of ``class_balanced``.

    With hard labels, unit features (no ``feat_norm``), no sample weights
    and a ``'mean'`` or ``'sum'`` reduction, the loss has a fused path
    (:func:`~etf_plugin.functional.dot_regression.dot_regression_sum`): the
    own-class cosine, square, class weights, reduction and loss weight as
    one autograd function whose backward is two operators. ``fused='auto'``
    takes it for CUDA tensors only; on the CPU the eager path stays (its
    rounding made the shipped results). Soft targets (Mixup, CutMix) and the
    other cases always run the eager path.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        class_balanced (bool): Use the per-batch class-balanced lengths.
            Defaults to False.
        norm_reg (float): Weight of the feature-norm penalty; needs
            ``feat_norm`` in ``forward``. Defaults to 0.
        balance_power (float, optional): ``q`` in ``[0, 1]`` of the
            dataset-level weights ``n_k^(-q)``; not with ``class_balanced``.
            Defaults to None (off).
        class_counts (Sequence[int], optional): Training samples per class
            for ``balance_power``, instead of the run's.
        counts_file (str, optional): File with one count per line, instead.
        fused (str | bool): ``'auto'`` (the fused path for CUDA tensors),
            True (wherever it applies) or False (never). Defaults to
            ``'auto'``.
    """

    takes_cosines = True

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 class_balanced: bool = False,
                 norm_reg: float = 0.0,
                 balance_power: Optional[float] = None,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 fused: Union[str, bool] = 'auto'):
        super().__init__()
        self.fused = check_fused(fused)
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}.')
        if norm_reg < 0:
            raise ValueError(f'norm_reg must be >= 0, got {norm_reg}.')
        if balance_power is not None:
            if class_balanced:
                raise ValueError('DotRegressionLoss: balance_power (dataset-'
                                 'level weights) and class_balanced (per-'
                                 'batch weights) exclude each other.')
            if not 0 <= balance_power <= 1:
                raise ValueError(f'balance_power must lie in [0, 1], got '
                                 f'{balance_power}.')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.class_balanced = class_balanced
        self.norm_reg = norm_reg
        self.balance_power = balance_power
        # Not persistent: checkpoints keep the keys of the plain loss; the
        # counts travel in the checkpoint's meta (ClassCountsHook).
        self.register_buffer('dataset_class_weight', None, persistent=False)
        self._init_class_counts(class_counts, counts_file)

    def _on_class_counts(self, counts) -> None:
        if self.balance_power is None:
            return
        # dot_regression_loss moves the weights to the scores' device.
        self.dataset_class_weight = tempered_class_weights(
            counts, self.balance_power)

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
        num_classes = cls_score.shape[1]
        check_labels_once(self, label, num_classes)
        class_weight = None
        if self.balance_power is not None:
            if self.dataset_class_weight is None:
                self._require_class_counts()
            class_weight = self.dataset_class_weight
        class_counts = None
        if self.class_balanced and is_distributed() and get_world_size() > 1:
            class_counts = hard_label_counts(label, num_classes)
            all_reduce(class_counts)
        reduction = reduction_override or self.reduction
        if self._uses_fused(cls_score, label, weight, feat_norm, reduction,
                            avg_factor):
            return self._fused_loss(cls_score, label, class_counts,
                                    class_weight, reduction, avg_factor)
        loss = dot_regression_loss(
            cls_score,
            label,
            feat_norm=feat_norm,
            class_balanced=self.class_balanced,
            class_counts=class_counts,
            class_weight=class_weight,
            norm_reg=self.norm_reg)
        if weight is not None:
            weight = weight.reshape(-1).to(loss.dtype)
        return self.loss_weight * weight_reduce_loss(
            loss, weight, reduction, avg_factor)

    def _fused_loss(self, cls_score, label, class_counts, class_weight,
                    reduction, avg_factor) -> torch.Tensor:
        """The reduced, weighted loss by the fused function."""
        class_weight = resolve_class_weight(label, cls_score.shape[1],
                                            self.class_balanced,
                                            class_counts, class_weight)
        if class_weight is not None:
            class_weight = class_weight.to(cls_score)
        scale = self.loss_weight
        if reduction == 'mean':
            scale /= cls_score.shape[0] if avg_factor is None else avg_factor
        return dot_regression_sum(cls_score, label, scale, class_weight)

    def _uses_fused(self, cls_score, label, weight, feat_norm, reduction,
                    avg_factor) -> bool:
        """Whether this call takes the fused path (from shapes, devices and
        flags, never values). ``'sum'`` with ``avg_factor`` goes to the
        eager path, which raises MMPretrain's error for it."""
        if not fused_for(self.fused, cls_score):
            return False
        return (label.dim() == 1 and weight is None and feat_norm is None
                and not self.norm_reg and cls_score.dim() == 2
                and not isinstance(avg_factor, torch.Tensor)
                and (reduction == 'mean' or
                     (reduction == 'sum' and avg_factor is None)))
