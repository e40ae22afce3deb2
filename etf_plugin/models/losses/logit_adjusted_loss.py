"""``LogitAdjustedLoss``: cross-entropy on prior-adjusted logits."""
from typing import Optional, Sequence

import torch
from mmpretrain.models.losses import CrossEntropyLoss
from mmpretrain.registry import MODELS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.logit_adjustment import adjust_logits, log_prior


@MODELS.register_module()
class LogitAdjustedLoss(ClassCountsConsumer, CrossEntropyLoss):
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021).

    Cross-entropy on ``logits + tau * log(pi)``, ``pi`` the training class
    prior (see :mod:`etf_plugin.functional.logit_adjustment`). Adding the log
    prior during training makes the plain argmax of the trained logits
    approximate the balanced-error-optimal classifier, so the model is used
    unchanged at test time. ``tau = 0`` is exactly MMPretrain's
    ``CrossEntropyLoss``.

    It is MMPretrain's ``CrossEntropyLoss`` on adjusted logits, with the same
    targets: integer labels, or the ``(N, K)`` soft targets of Mixup/CutMix
    (``use_soft=True`` for MMPretrain's ``soft_cross_entropy``; with
    ``use_soft=False`` PyTorch's ``cross_entropy`` takes them as
    probabilities). It plugs into ``LinearClsHead`` unchanged::

        head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                  loss=dict(type='LogitAdjustedLoss', tau=1.0))

    The prior comes from the training set the runner uses, handed over by
    ``ClassCountsHook`` (in the runtime of every etf_plugin config), so it
    follows any change of the training set on the command line;
    ``class_counts=[...]`` or ``counts_file=PATH`` override it. Every class
    must have a positive count.

    Args:
        tau (float): Scale of the adjustment. Defaults to 1.0 (the paper's
            choice).
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the training set's.
        counts_file (str, optional): File with one count per line, instead.
        use_soft (bool): Use MMPretrain's ``soft_cross_entropy``. Defaults to
            False.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        class_weight (Sequence[float], optional): Per-class weights of the
            cross-entropy. Defaults to None.
    """

    def __init__(self,
                 tau: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 use_soft: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 class_weight: Optional[Sequence[float]] = None) -> None:
        super().__init__(
            use_sigmoid=False,
            use_soft=use_soft,
            reduction=reduction,
            loss_weight=loss_weight,
            class_weight=class_weight)
        self.tau = float(tau)
        # Not persistent: checkpoints keep the keys of a plain CE model; the
        # counts travel in the checkpoint's meta (ClassCountsHook).
        self.register_buffer('class_log_prior', None, persistent=False)
        self._init_class_counts(class_counts, counts_file)

    def _on_class_counts(self, counts) -> None:
        # adjust_logits moves the prior to the logits' device.
        self.class_log_prior = log_prior(counts).float()

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> torch.Tensor:
        """Cross-entropy of the adjusted ``cls_score``.

        Args:
            cls_score (torch.Tensor): ``(N, K)`` logits.
            label (torch.Tensor): ``(N,)`` labels or ``(N, K)`` soft targets.
            weight (torch.Tensor, optional): ``(N,)`` sample weights.
            avg_factor (float, optional): Denominator of the mean.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            torch.Tensor: The loss.
        """
        if self.class_log_prior is None:
            self._require_class_counts()
        adjusted = adjust_logits(cls_score, self.class_log_prior, self.tau)
        return super().forward(
            adjusted,
            label,
            weight=weight,
            avg_factor=avg_factor,
            reduction_override=reduction_override,
            **kwargs)
