"""``ETFObjectnessLoss``: the ``loss_cls`` that
:class:`~etf_plugin.det.ETFBBoxHead` builds with its predictor."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses import accuracy, weight_reduce_loss
from mmengine.dist import all_reduce, get_world_size, is_distributed

from etf_plugin.functional import dot_regression_loss


class ETFObjectnessLoss(nn.Module):
    """Objectness cross-entropy plus dot regression onto the class ETF, the
    ``loss_cls`` of :class:`~etf_plugin.det.ETFBBoxHead` (which builds it
    from its own arguments, with :class:`ETFObjectnessPredictor`).

    ``cls_score`` is the predictor's ``(N, K + 1)`` output: the cosines
    ``cos`` of the RoI features with the ``K`` class vertices, then the
    objectness logit ``o``. ``labels`` are mmdet's RoI targets in ``[0, K]``
    (``K`` = background). The loss has two terms, logged separately (the way
    mmdet's ``SeesawLoss`` splits objectness from classes):

    - ``loss_cls_objectness``: binary cross-entropy of ``o`` against
      "object" (``label < K``) on every sampled RoI;
    - ``loss_cls_classes``: the dot-regression loss
      (:func:`etf_plugin.functional.dot_regression_loss`, the package's one
      formula) of ``cos`` against the label, on the positive RoIs only;
      optionally class-balanced among them.

    Both are weighted by mmdet's ``label_weights`` and divided by the same
    ``avg_factor`` (the number of sampled RoIs, as mmdet's cross-entropy and
    ``SeesawLoss`` do), so the positives' share of the batch sets the class
    term's weight as it does in mmdet's default loss.

    Scores (:meth:`get_activation`, used by mmdet's test path against
    ``score_thr`` and by Cascade R-CNN's refinement): ``p = sigmoid(o)`` is
    the probability of an object and ``softmax(s * cos)`` over the ``K``
    classes the class given an object, so class ``k`` scores
    ``p * softmax(s * cos)_k`` and the background ``1 - p``; every row sums
    to 1. A RoI on its class's vertex (cosine 1, ``-1/(K-1)`` with the
    others) gets ``softmax(s * cos)_k = 1 / (1 + (K - 1) e^(-s K/(K-1)))``:
    0.9997 for ``K = 6`` and 0.95 for LVIS's ``K = 1203`` at ``s = 10``, so
    a detection's score is, to within that factor, its objectness. ``s``
    does not enter the training loss; it only shapes the scores.

    With ``reduction_override='none'`` (mmdet's ``OHEMSampler``) the result
    is ``dict(loss_cls=...)``, the ``(N,)`` per-RoI sum of both terms, which
    ``OHEMSampler``'s default ``loss_key='loss_cls'`` ranks.

    The training step reads nothing back to the host (it compiles with
    ``torch.compile(fullgraph=True)``): the positives are selected by a
    one-hot mask, not by indexing, and labels outside ``[0, K]`` fail an
    asynchronous check (a ``RuntimeError`` on the CPU, a device-side assert
    on the GPU). mmdet's ``NumClassCheckHook`` checks the bbox head's
    ``num_classes`` against the dataset before training, where it is free.

    Args:
        logit_scale (float): ``s`` of the class softmax in the scores.
            Defaults to 10, as ``ETFHead``.
        loss_weight (float): Weight of both terms. Defaults to 1.0.
        dr_weight (float): Extra weight of the class (DR) term relative to
            the objectness term. Defaults to 1.0.
        class_balanced (bool): Class-balanced DR among the positive RoIs
            (the authors' per-batch weights, see ``DotRegressionLoss``; the
            background is not a class here). Defaults to False.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
    """

    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def __init__(self,
                 logit_scale: float = 10.0,
                 loss_weight: float = 1.0,
                 dr_weight: float = 1.0,
                 class_balanced: bool = False,
                 reduction: str = 'mean'):
        super().__init__()
        if not (isinstance(logit_scale, (int, float))
                and 0 < logit_scale < float('inf')):
            raise ValueError(f'logit_scale must be a finite number > 0, got '
                             f'{logit_scale!r}.')
        if dr_weight < 0 or loss_weight < 0:
            raise ValueError(f'loss_weight and dr_weight must be >= 0, got '
                             f'{loss_weight} and {dr_weight}.')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}.')
        self.logit_scale = float(logit_scale)
        self.loss_weight = loss_weight
        self.dr_weight = dr_weight
        self.class_balanced = class_balanced
        self.reduction = reduction

    def get_cls_channels(self, num_classes: int) -> int:
        """The predictor's width: ``K`` cosines plus the objectness logit."""
        return num_classes + 1

    def _split(self, cls_score: torch.Tensor):
        if cls_score.dim() != 2 or cls_score.shape[1] < 3:
            raise ValueError(
                f'ETFObjectnessLoss expects (N, K + 1) scores from '
                f'ETFObjectnessPredictor (K >= 2 cosines, then the '
                f'objectness logit), got {tuple(cls_score.shape)}.')
        num_classes = cls_score.shape[1] - 1
        return cls_score[:, :num_classes], cls_score[:, num_classes], \
            num_classes

    def forward(self,
                cls_score: torch.Tensor,
                labels: torch.Tensor,
                label_weights: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Dict[str, torch.Tensor]:
        """Compute both terms.

        Args:
            cls_score (torch.Tensor): ``(N, K + 1)`` predictor output.
            labels (torch.Tensor): ``(N,)`` RoI labels in ``[0, K]``.
            label_weights (torch.Tensor, optional): ``(N,)`` RoI weights.
            avg_factor (float, optional): Denominator of the mean of both
                terms; the number of RoIs if not given.
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            dict[str, torch.Tensor]: ``loss_cls_objectness`` and
            ``loss_cls_classes``; ``loss_cls`` per RoI for ``'none'``.
        """
        reduction = reduction_override or self.reduction
        cosines, objectness, num_classes = self._split(cls_score)
        labels = labels.reshape(-1)
        torch._assert_async(
            ((labels >= 0) & (labels <= num_classes)).all(),
            f'ETFObjectnessLoss: RoI labels outside [0, {num_classes}] (the '
            f'bbox head\'s {num_classes} classes and the background): the '
            f'dataset has more classes than the bbox head. Set '
            f'model.roi_head.bbox_head.num_classes to '
            f'len(dataset.metainfo[\'classes\']).')
        if label_weights is None:
            label_weights = cosines.new_ones(labels.shape)
        label_weights = label_weights.reshape(-1).float()
        # One-hot over the K object classes: a background RoI (label K) has
        # an all-zero row, so the DR term never sees it.
        targets = (labels[:, None] == torch.arange(
            num_classes, device=labels.device)).float()
        is_object = targets.sum(dim=1)

        objectness_loss = F.binary_cross_entropy_with_logits(
            objectness.float(), is_object, reduction='none') * label_weights
        class_counts = None
        if self.class_balanced:
            # the positives' labels; summed over all ranks, so that every
            # rank weighs a class as the global batch does
            class_counts = targets.sum(dim=0)
            if is_distributed() and get_world_size() > 1:
                all_reduce(class_counts)
        class_loss = self.dr_weight * dot_regression_loss(
            cosines.float(),
            targets,
            class_balanced=self.class_balanced,
            class_counts=class_counts) * label_weights

        if reduction == 'none':
            return dict(
                loss_cls=self.loss_weight * (objectness_loss + class_loss))
        if reduction == 'mean' and avg_factor is None:
            # the mean over all sampled RoIs for both terms, not over the
            # positives for the class term
            avg_factor = float(labels.numel())
        return dict(
            loss_cls_objectness=self.loss_weight * weight_reduce_loss(
                objectness_loss, reduction=reduction, avg_factor=avg_factor),
            loss_cls_classes=self.loss_weight * weight_reduce_loss(
                class_loss, reduction=reduction, avg_factor=avg_factor))

    def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
        """mmdet's ``(N, K + 1)`` scores ``[p * softmax(s * cos), 1 - p]``,
        ``p = sigmoid(o)``, the background last (mmdet drops it)."""
        cosines, objectness, _ = self._split(cls_score)
        objectness = objectness.float().unsqueeze(1)
        classes = F.softmax(self.logit_scale * cosines.float(), dim=1)
        # sigmoid(-o), not 1 - sigmoid(o): exact for confident objects
        return torch.cat(
            [torch.sigmoid(objectness) * classes,
             torch.sigmoid(-objectness)], dim=1)

    def get_accuracy(self, cls_score: torch.Tensor,
                     labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Accuracies in percent: ``acc`` (mmdet's usual top-1 over all
        sampled RoIs and ``K + 1`` scores), ``acc_objectness`` (object or
        not, all RoIs) and ``acc_classes`` (nearest vertex, positive RoIs)."""
        cosines, objectness, num_classes = self._split(cls_score)
        labels = labels.reshape(-1)
        is_object = labels < num_classes
        # two-way logits (background 0, object o): argmax is "object" iff
        # o > 0, i.e. p > 0.5
        two_way = torch.stack([torch.zeros_like(objectness), objectness], 1)
        return dict(
            acc=accuracy(self.get_activation(cls_score), labels),
            acc_objectness=accuracy(two_way, is_object.long()),
            acc_classes=accuracy(cosines[is_object], labels[is_object]))
