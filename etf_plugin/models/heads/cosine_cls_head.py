"""``CosineClsHead``: a learnable cosine classifier on ``ETFHead``'s neck."""
from typing import Optional, Tuple, Union

import torch.nn as nn
from mmpretrain.registry import MODELS

from ..utils import CosineClassifier
from .normalized_cls_head import NormalizedClsHead


@MODELS.register_module()
class CosineClsHead(NormalizedClsHead):
    """Learnable cosine classifier: ``ETFHead`` with trained class vectors.

    The control arm for the fixed ETF: the same neck (BatchNorm1d, then L2
    normalisation, in float32), the same ``logit_scale`` and the same loss
    protocol as :class:`~etf_plugin.models.heads.ETFHead`
    (:class:`~etf_plugin.models.heads.NormalizedClsHead`), but the class
    vectors are the trained rows of
    :class:`~etf_plugin.models.utils.CosineClassifier`. With ``init='etf'``
    (default) they start at the simplex ETF that ``ETFHead(seed=seed)``
    keeps fixed, so the only difference between the two heads is that these
    rows are trained. ``class_weight()`` gives the normalised rows, so
    ``NeuralCollapseHook`` measures Fang et al.'s minority collapse
    (``mc_w_cos_few``) on them.

    Args:
        num_classes (int): Number of classes ``K`` (at least 2).
        in_channels (int): Channels of the input feature.
        loss (dict | nn.Module): The loss. Defaults to
            ``dict(type='CrossEntropyLoss', loss_weight=1.0)``.
        topk (int | tuple[int]): Top-k accuracy. Defaults to ``(1, )``.
        cal_acc (bool): Compute training accuracy. Defaults to False.
        logit_scale (float): Scale from cosines to logits. Defaults to 10,
            as ``ETFHead``.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
        init (str): ``'etf'`` or ``'normal'`` initial rows (see
            ``CosineClassifier``). Defaults to ``'etf'``.
        seed (int): Seed of the initial rows. Defaults to 0.
        fused (str | bool): The fused neck and dot products, as in
            ``ETFHead``. Defaults to ``'auto'`` (CUDA tensors).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss: Union[dict, nn.Module] = dict(
                     type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 logit_scale: float = 10.0,
                 with_bn: bool = True,
                 init: str = 'etf',
                 seed: int = 0,
                 fused: Union[str, bool] = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(
            logit_scale, loss=loss, topk=topk, cal_acc=cal_acc,
            init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.classifier = CosineClassifier(
            num_classes, in_channels, with_bn=with_bn, init=init, seed=seed,
            fused=fused)
