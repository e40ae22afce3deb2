"""``NormalizedClsHead``: what the fixed-ETF and the learnable cosine heads
share: a normalised classifier, a logit scale, and a loss protocol."""
from typing import List, Tuple

import torch
from mmpretrain.models.heads import ClsHead
from mmpretrain.structures import DataSample

from ..utils import NormalizedClassifier


class NormalizedClsHead(ClsHead):
    """A ``ClsHead`` over a :class:`~etf_plugin.models.utils.
    NormalizedClassifier` (``self.classifier``, built by the subclass).

    ``pre_logits`` is the classifier's normalised feature and ``z`` its dot
    products with the class vectors (cosines when normalised). What the loss
    receives is declared by the loss: one whose class attribute
    ``takes_cosines`` is True (``DotRegressionLoss``, or a cosine loss of
    your own) gets ``z`` itself, plus ``feat_norm`` (the feature norms) when
    the classifier does not normalise. Any other loss (e.g.
    ``CrossEntropyLoss``) and the prediction softmax get ``logit_scale *
    z``: cosines lie in ``[-1, 1]``, so without a scale the softmax would be
    nearly uniform. Argmax predictions do not depend on the scale. Targets,
    ``avg_factor`` and ``cal_acc`` follow ``ClsHead`` exactly.

    ``loss`` reads nothing on the host, so a training step never waits for
    the accelerator here and the head compiles with ``torch.compile(...,
    fullgraph=True)``. Non-finite features give a non-finite loss, which
    MMEngine's machinery handles: under AMP the loss scaler skips the step,
    otherwise ``NonFiniteLossHook`` stops the run with a message.

    Args:
        logit_scale (float): Scale from cosines to logits.
        **kwargs: Passed to ``ClsHead`` (``loss``, ``topk``, ``cal_acc``,
            ``init_cfg``).
    """

    classifier: NormalizedClassifier

    def __init__(self, logit_scale: float, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(logit_scale, (int, float))
                and 0 < logit_scale < float('inf')):
            raise ValueError(f'logit_scale must be a finite number > 0, got '
                             f'{logit_scale!r}.')
        self.logit_scale = float(logit_scale)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The feature that meets the class vectors: the last stage's
        feature after the classifier's neck and normalisation."""
        return self.classifier.features(feats[-1])

    def unnormalized_features(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The last stage's feature after the projection and BatchNorm, before
        the L2 normalisation (what ``NeuralCollapseHook(stage=
        'unnormalized')`` measures)."""
        return self.classifier.neck(feats[-1])

    def class_weight(self) -> torch.Tensor:
        """The ``(K, d)`` class vectors the features meet."""
        return self.classifier.class_vectors()

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``logit_scale * z`` for prediction."""
        return self.classifier.scores(feats[-1], self.logit_scale)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Compute the loss on a batch with ``ClsHead``'s target handling.

        Args:
            feats (tuple[torch.Tensor]): Features from the backbone/neck.
            data_samples (list[DataSample]): Annotations, with ``gt_label``
                or (after Mixup/CutMix) ``gt_score``.
            **kwargs: Passed to the loss module.

        Returns:
            dict[str, torch.Tensor]: ``loss`` and optional accuracies.
        """
        if not getattr(self.loss_module, 'takes_cosines', False):
            cls_score = self.classifier.scores(feats[-1], self.logit_scale)
        elif self.classifier.normalize:
            cls_score = self.classifier.scores(feats[-1])
        else:
            x, cls_score = self.classifier.features_and_dots(feats[-1])
            kwargs['feat_norm'] = x.norm(dim=1)
        return self._get_loss(cls_score, data_samples, **kwargs)
