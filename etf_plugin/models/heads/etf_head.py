"""``ETFHead``: a classification head over the fixed simplex-ETF classifier."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ..utils import ETFClassifier
from ..utils.etf_classifier import remap_legacy_keys
from .normalized_cls_head import NormalizedClsHead

@MODELS.register_module()
class ETFHead(NormalizedClsHead):
    """Classification head with a fixed random simplex-ETF classifier.

    A drop-in replacement for ``LinearClsHead`` (Yang et al., NeurIPS 2022):
    the classifier is :class:`~etf_plugin.models.utils.ETFClassifier`,
    ``num_classes`` unit vectors with pairwise cosine ``-1/(K-1)`` in the
    persistent buffer ``classifier.etf_vectors``, never trained. Its neck
    (optional projection, BatchNorm, L2 normalisation) turns the last
    stage's feature into ``pre_logits``; their dot products with the class
    vectors, ``z``, are cosines when normalised.

    What the loss receives follows
    :class:`~etf_plugin.models.heads.NormalizedClsHead`: a loss declaring
    ``takes_cosines = True`` (``DotRegressionLoss``) gets the cosines ``z``,
    any other loss (e.g. ``CrossEntropyLoss`` for ETF + CE) and the
    prediction softmax get ``logit_scale * z``.

    Args:
        num_classes (int): Number of classes ``K`` (at least 2).
        in_channels (int): Channels of the input feature.
        loss (dict | nn.Module): The loss. Defaults to
            ``dict(type='DotRegressionLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracy. Defaults to ``(1, )``.
        cal_acc (bool): Compute training accuracy. Defaults to False.
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        logit_scale (float): Scale from cosines to logits for prediction and
            for losses that do not take cosines. Defaults to 10.
        with_bn (bool): BatchNorm1d before the normalisation, as in the
            authors' heads; needed for non-negative (post-ReLU) features.
            Defaults to True.
        normalize (bool): L2-normalise the features. ``False`` is the authors'
            ImageNet-LT variant (pair it with ``DotRegressionLoss(norm_reg=
            0.01)``). Defaults to True.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first. Needed when ``in_channels <
            num_classes - 1``, where no simplex ETF fits. Defaults to None.
        fused (str | bool): Run the neck and the dot products as one
            autograd function with a closed-form backward (few operators: a
            faster GPU step): ``'auto'`` for CUDA tensors, True wherever it
            applies, False never (see
            :class:`~etf_plugin.models.utils.NormalizedClassifier`).
            Defaults to ``'auto'``.
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
                 with_bn: bool = True,
                 normalize: bool = True,
                 proj_channels: Optional[int] = None,
                 fused: Union[str, bool] = 'auto',
                 init_cfg: Optional[dict] = dict(
                     type='Normal', layer='Linear', std=0.01)):
        super().__init__(
            logit_scale, loss=loss, topk=topk, cal_acc=cal_acc,
            init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.classifier = ETFClassifier(
            num_classes,
            in_channels,
            proj_channels=proj_channels,
            with_bn=with_bn,
            normalize=normalize,
            seed=seed,
            fused=fused)

    @property
    def etf_vectors(self) -> torch.Tensor:
        """The ``(K, d)`` fixed class vectors."""
        return self.classifier.etf_vectors

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        remap_legacy_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
