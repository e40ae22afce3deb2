from typing import Dict

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from etf_plugin.models.losses.dot_regression_loss import DotRegressionLoss


@MODELS.register_module(name='DotRegressionLoss')
class DetDotRegressionLoss(DotRegressionLoss):
    """The dot-regression loss as an MMDetection ``loss_cls``.

    Registered in mmdet's ``MODELS`` under the same type name as the
    MMPretrain loss, ``'DotRegressionLoss'``, so a bbox head's
    ``loss_cls=dict(type='DotRegressionLoss')`` gets this class under
    ``default_scope='mmdet'``. It adds only what mmdet's ``BBoxHead`` asks of
    a classification loss; the formula is the one of
    :func:`etf_plugin.functional.dot_regression_loss`, and ``forward`` is the
    MMPretrain loss's, whose ``(cls_score, label, weight, avg_factor,
    reduction_override)`` signature is mmdet's convention too.

    Pair it with ``cls_predictor_cfg=dict(type='ETFPredictor')``:

    - ``cls_score`` are the ``(N, K + 1)`` cosines of the RoI features with
      the ETF vertices, the last one being the background's.
    - ``label`` is mmdet's RoI target in ``[0, K]``; negatives carry the
      background index ``K`` and are regressed onto the background vertex,
      like any other class. ``weight`` is mmdet's ``label_weights`` and
      ``avg_factor`` its count of sampled RoIs.
    - ``custom_cls_channels``: the classifier has ``K + 1`` outputs.
    - ``custom_activation``: the cosines are turned into probabilities by
      :meth:`get_activation`, both for predictions (``BBoxHead`` would
      otherwise take a softmax of raw cosines, nearly uniform over 1204
      LVIS classes) and for Cascade R-CNN's box refinement.
    - ``custom_accuracy``: :meth:`get_accuracy` reports mmdet's ``acc``.

    ``class_balanced`` treats the background as one more class, so it
    gives the background the same total weight as each object class present
    in the batch.

    Args:
        logit_scale (float): Scale ``s`` of the prediction softmax
            ``softmax(s * cos)``. A RoI on its own vertex (cosine 1, about 0
            with the others) then scores ``e^s / (e^s + K)``; ``s = 10`` gives
            0.95 for LVIS's ``K + 1 = 1204`` classes, and ``s >= ln(9 K)``
            keeps it above 0.9. A RoI on the background vertex scores below
            ``e^-s`` for every object class (4.5e-5 at ``s = 10``), under
            LVIS's ``score_thr=0.0001``. Defaults to 10, as ``ETFHead``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        class_balanced (bool): Per-batch class-balanced lengths (see
            ``DotRegressionLoss``). Defaults to False.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self,
                 logit_scale: float = 10.0,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 class_balanced: bool = False):
        # No norm_reg: ETFPredictor always normalises its features.
        super().__init__(
            loss_weight=loss_weight,
            reduction=reduction,
            class_balanced=class_balanced)
        if logit_scale <= 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}.')
        self.logit_scale = logit_scale

    def get_cls_channels(self, num_classes: int) -> int:
        """The classifier's width: ``num_classes`` plus the background."""
        return num_classes + 1

    def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``softmax(logit_scale * cos)``, shape
        ``(N, K + 1)`` with the background last (mmdet drops it)."""
        return F.softmax(self.logit_scale * cls_score, dim=-1)

    def get_accuracy(self, cls_score: torch.Tensor,
                     labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """mmdet's top-1 accuracy (in percent) over all sampled RoIs,
        background included, logged as ``acc`` like mmdet's default."""
        # Imported here: mmdet.models is heavy, and importing etf_plugin
        # must stay cheap for MMPretrain users who also have mmdet.
        from mmdet.models.losses import accuracy

        return dict(acc=accuracy(cls_score, labels))
