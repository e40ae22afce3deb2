from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.evaluation.metrics import Accuracy
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from etf_plugin.functional import (check_etf_shape, check_loaded_etf,
                                   simplex_etf)
from ..losses.dot_regression_loss import DotRegressionLoss

# F.normalize's floor on the norm: a zero feature maps to zero, never NaN.
NORM_EPS = 1e-8


@MODELS.register_module()
class ETFHead(ClsHead):
    """Classification head with a fixed random simplex-ETF classifier.

    A drop-in replacement for ``LinearClsHead`` (Yang et al., NeurIPS 2022):
    the classifier is ``num_classes`` unit vectors with pairwise cosine
    ``-1/(K-1)`` (:func:`etf_plugin.functional.simplex_etf`), kept in the
    persistent buffer ``etf_vectors``. It is saved in checkpoints and never
    trained; the same ``seed`` rebuilds it bit-identically in every process,
    and a loaded checkpoint's ETF replaces the freshly built one.

    The feature fed to the ETF (``pre_logits``) is the last stage's feature,
    optionally projected by a learnable linear layer (``proj_channels``) and
    batch-normalised (``with_bn``, the authors' neck), then L2-normalised
    (``normalize``). Its dot products with the class vectors, ``z``, are
    cosine similarities when normalised.

    - ``DotRegressionLoss`` is given ``z`` itself (and the feature norms when
      ``normalize=False``): its regression target is 1.
    - Any other loss (e.g. ``CrossEntropyLoss``, for ETF + CE) and the
      prediction softmax see the logits ``logit_scale * z``: cosines lie in
      ``[-1, 1]``, so without a scale the softmax would be nearly uniform.
      Argmax predictions do not depend on the scale.

    Two caveats. Features pooled after a ReLU are non-negative, and a
    non-negative vector reaches a cosine of only about 0.7 with a random ETF
    vertex: use ``with_bn=True`` (as all our configs do) unless the features
    can be negative. And a learnable projection followed by the fixed ETF is,
    as a whole, a learnable classifier (any matrix whose class rows sum to
    zero): ``proj_channels`` makes narrow features usable but gives up the
    fixed-geometry guarantee on the projected side.

    Args:
        num_classes (int): Number of classes ``K`` (at least 2).
        in_channels (int): Channels of the input feature.
        loss (dict | nn.Module): The loss. Defaults to
            ``dict(type='DotRegressionLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracy. Defaults to ``(1, )``.
        cal_acc (bool): Compute training accuracy. Defaults to False.
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        logit_scale (float): Scale from cosines to logits for prediction and
            for losses other than DR. Defaults to 10.
        with_bn (bool): BatchNorm1d before the normalisation, as in the
            authors' CIFAR/ImageNet heads. Defaults to False.
        normalize (bool): L2-normalise the features. ``False`` is the authors'
            ImageNet-LT variant (pair it with ``DotRegressionLoss(norm_reg=
            0.01)``). Defaults to True.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first. Needed when ``in_channels <
            num_classes - 1``, where no simplex ETF fits. Defaults to None.
        init_cfg (dict, optional): Initialisation config of the projection.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss: Union[dict, nn.Module] = dict(
                     type='DotRegressionLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 seed: int = 0,
                 logit_scale: float = 10.0,
                 with_bn: bool = False,
                 normalize: bool = True,
                 proj_channels: Optional[int] = None,
                 init_cfg: Optional[dict] = dict(
                     type='Normal', layer='Linear', std=0.01)):
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc,
                         init_cfg=init_cfg)
        if logit_scale <= 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.seed = seed
        self.logit_scale = logit_scale
        self.normalize = normalize
        etf_dim = in_channels if proj_channels is None else proj_channels
        check_etf_shape(num_classes, etf_dim)

        self.proj = (None if proj_channels is None else nn.Linear(
            in_channels, proj_channels))
        self.bn = nn.BatchNorm1d(etf_dim) if with_bn else None
        self.register_buffer('etf_vectors',
                             simplex_etf(num_classes, etf_dim, seed))

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """The feature that meets the ETF: the last stage's feature after the
        optional projection, BatchNorm and L2 normalisation."""
        x = feats[-1]
        if self.proj is not None:
            x = self.proj(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.normalize:
            x = F.normalize(x, dim=1, eps=NORM_EPS)
        return x

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits ``logit_scale * z`` for prediction."""
        return self.logit_scale * self.etf_dot(self.pre_logits(feats))

    def etf_dot(self, x: torch.Tensor) -> torch.Tensor:
        """Dot products ``z`` of features with the ETF class vectors."""
        return x @ self.etf_vectors.t().to(x.dtype)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """Compute the loss on a batch.

        Args:
            feats (tuple[torch.Tensor]): Features from the backbone/neck.
            data_samples (list[DataSample]): Annotations, with ``gt_label``
                or (after Mixup/CutMix) ``gt_score``.
            **kwargs: Passed to the loss module.

        Returns:
            dict[str, torch.Tensor]: ``loss`` and optional accuracies.
        """
        x = self.pre_logits(feats)
        if not torch.isfinite(x).all():
            raise FloatingPointError(
                'ETFHead got non-finite (NaN/Inf) features: training has '
                'diverged; lower the learning rate or use AMP loss scaling.')
        dots = self.etf_dot(x)
        if 'gt_score' in data_samples[0]:
            target = torch.stack([i.gt_score for i in data_samples])
        else:
            target = torch.cat([i.gt_label for i in data_samples])

        if isinstance(self.loss_module, DotRegressionLoss):
            if not self.normalize:
                kwargs['feat_norm'] = x.norm(dim=1)
            cls_score = dots
        else:
            cls_score = self.logit_scale * dots
        losses = dict(
            loss=self.loss_module(
                cls_score, target, avg_factor=dots.size(0), **kwargs))
        if self.cal_acc:
            if target.ndim != 1:
                raise ValueError('cal_acc needs integer labels; it is '
                                 'meaningless with Mixup/CutMix soft targets.')
            acc = Accuracy.calculate(dots, target, topk=self.topk)
            losses.update(
                {f'accuracy_top-{k}': a
                 for k, a in zip(self.topk, acc)})
        return losses

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_loaded_etf(state_dict, prefix + 'etf_vectors', self.etf_vectors,
                         type(self).__name__)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
