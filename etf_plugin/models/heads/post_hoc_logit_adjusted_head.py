"""Post-hoc logit adjustment (Menon et al., ICLR 2021) at prediction:
``PostHocLogitAdjustedHead`` (a ``LinearClsHead``) and its ETF and cosine
counterparts."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.logit_adjustment import adjust_logits, log_prior
from .cosine_cls_head import CosineClsHead
from .etf_head import ETFHead


class PostHocLogitAdjustment(ClassCountsConsumer):
    """Mixin of a classification head: ``predict`` scores a sample with
    ``logits - posthoc_tau * log(pi)``, ``pi`` the training class prior,
    which moves the argmax toward the rare classes without retraining (see
    :mod:`etf_plugin.functional.logit_adjustment`). Everything else is the
    head's own: ``forward`` (``mode='tensor'``) returns the raw logits,
    ``loss`` is unchanged, and so are the parameters, so a checkpoint of
    the plain head loads into the adjusted one and back.

    The prior is the one the checkpoint was trained with
    (``ClassCountsHook`` saves it in the checkpoint and hands it over at
    test time); ``class_counts=[...]`` or ``counts_file=PATH`` override it.
    ``posthoc_tau=0`` needs none. Every class must have a positive count.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Number of input channels.
        posthoc_tau (float): Scale of the correction; 0 gives the plain
            head's predictions. Defaults to 1.0 (the paper's choice).
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the checkpoint's.
        counts_file (str, optional): File with one count per line, instead.
        **kwargs: Passed to the head (``loss``, ``topk``, ...).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 posthoc_tau: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.posthoc_tau = float(posthoc_tau)
        # Not persistent: the state dict stays that of the plain head.
        self.register_buffer('class_log_prior', None, persistent=False)
        self._init_class_counts(class_counts, counts_file)

    def _on_class_counts(self, counts) -> None:
        self.class_log_prior = log_prior(counts, self.num_classes).float()

    def predict(
        self,
        feats: Tuple[torch.Tensor],
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Predict with the adjusted scores ``logits - tau * log(pi)``.

        Args:
            feats (tuple[torch.Tensor]): Features of the backbone/neck; the
                last one is classified.
            data_samples (list[DataSample | None], optional): Annotations;
                their ``pred_score`` and ``pred_label`` are set.

        Returns:
            list[DataSample]: The predictions.
        """
        cls_score = self(feats)
        if self.posthoc_tau != 0:
            if self.class_log_prior is None:
                self._require_class_counts()
            cls_score = adjust_logits(cls_score, self.class_log_prior,
                                      -self.posthoc_tau)
        return self._get_predictions(cls_score, data_samples)


@MODELS.register_module()
class PostHocLogitAdjustedHead(PostHocLogitAdjustment, LinearClsHead):
    """``LinearClsHead`` with post-hoc logit adjustment at prediction; the
    arguments of :class:`PostHocLogitAdjustment`. To test a trained
    cross-entropy model with the adjustment::

        python tools/test.py configs/resnet32_digitslt_ce.py CKPT \
            --cfg-options model.head.type=PostHocLogitAdjustedHead

    or use a ``*_posthoc_la.py`` config.
    """


@MODELS.register_module()
class PostHocLogitAdjustedETFHead(PostHocLogitAdjustment, ETFHead):
    """``ETFHead`` with post-hoc logit adjustment of its prediction logits
    ``logit_scale * cos``, e.g. for a model trained with a loss that has no
    logit adjustment of its own; the arguments of
    :class:`PostHocLogitAdjustment` (the rest go to ``ETFHead``)."""


@MODELS.register_module()
class PostHocLogitAdjustedCosineClsHead(PostHocLogitAdjustment,
                                        CosineClsHead):
    """``CosineClsHead`` with post-hoc logit adjustment of its prediction
    logits ``logit_scale * cos``; the arguments of
    :class:`PostHocLogitAdjustment` (the rest go to ``CosineClsHead``)."""
