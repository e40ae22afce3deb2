"""``PostHocLogitAdjustedHead``: a ``LinearClsHead`` whose predictions are
corrected by the training class prior."""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from etf_plugin.datasets.class_counts import LazyClassCounts
from etf_plugin.functional.logit_adjustment import adjust_logits, log_prior


@MODELS.register_module()
class PostHocLogitAdjustedHead(LinearClsHead):
    """``LinearClsHead`` with post-hoc logit adjustment at prediction
    (Menon et al., ICLR 2021).

    ``predict`` scores a sample with ``logits - posthoc_tau * log(pi)``,
    ``pi`` the training class prior, which moves the argmax toward the rare
    classes without retraining (see
    :mod:`etf_plugin.functional.logit_adjustment`). Everything else is
    ``LinearClsHead``: ``forward`` (``mode='tensor'``) returns the raw
    logits and ``loss`` is unchanged. It has the same parameters, so a
    checkpoint of a ``LinearClsHead`` model loads into it and back. To test
    a trained cross-entropy model with the adjustment::

        python tools/test.py configs/resnet32_digitslt_ce.py CKPT \\
            --cfg-options model.head.type=PostHocLogitAdjustedHead \\
            model.head.counts_file=train_counts.txt

    or use a ``*_posthoc_la.py`` config, which reads the counts from the
    training set config.

    The training counts come from exactly one of ``class_counts``,
    ``counts_file`` or ``train_dataset`` (see
    :mod:`etf_plugin.datasets.class_counts`); ``posthoc_tau=0`` needs none.
    A ``train_dataset`` is read at the first prediction, so building the
    model reads no data. Every class must have a positive count.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Number of input channels.
        posthoc_tau (float): Scale of the correction; 0 gives plain
            ``LinearClsHead`` predictions. Defaults to 1.0 (the paper's
            choice).
        class_counts (Sequence[int], optional): Training samples per class.
        counts_file (str, optional): File with one count per line.
        train_dataset (dict, optional): Config of the training dataset (or
            the dataset itself).
        **kwargs: Passed to ``LinearClsHead`` (``loss``, ``topk``,
            ``cal_acc``, ``init_cfg``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 posthoc_tau: float = 1.0,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 train_dataset: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.posthoc_tau = float(posthoc_tau)
        self.class_counts = None
        # Not persistent: the state dict stays that of a LinearClsHead.
        self.register_buffer('class_log_prior', None, persistent=False)
        if self.posthoc_tau != 0 or any(
                source is not None
                for source in (class_counts, counts_file, train_dataset)):
            self.class_counts = LazyClassCounts(
                class_counts,
                counts_file,
                train_dataset,
                owner='PostHocLogitAdjustedHead')
            if self.class_counts.is_loaded:  # check the counts at build time
                self.class_log_prior = log_prior(self.class_counts(),
                                                 num_classes).float()

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
                self.class_log_prior = log_prior(self.class_counts(),
                                                 self.num_classes).to(
                                                     cls_score.device,
                                                     torch.float32)
            cls_score = adjust_logits(cls_score, self.class_log_prior,
                                      -self.posthoc_tau)
        return self._get_predictions(cls_score, data_samples)
