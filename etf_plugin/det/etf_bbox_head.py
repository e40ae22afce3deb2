"""``ETFBBoxHead``: MMDetection's ``Shared2FCBBoxHead`` with the fixed
simplex-ETF RoI classifier."""
from typing import Optional

from mmdet.models.roi_heads.bbox_heads import Shared2FCBBoxHead
from mmdet.registry import MODELS

from .objectness_loss import ETFObjectnessLoss
from .objectness_predictor import ETFObjectnessPredictor


@MODELS.register_module()
class ETFBBoxHead(Shared2FCBBoxHead):
    """``Shared2FCBBoxHead`` whose RoI classifier is a fixed simplex ETF over
    the ``K`` object classes plus a learnable objectness logit.

    A drop-in replacement for the linear head of a two-stage detector: a
    config swaps one ``type``::

        model = dict(roi_head=dict(bbox_head=dict(type='ETFBBoxHead')))

    The head builds its predictor (``fc_cls``, an
    :class:`~etf_plugin.det.ETFObjectnessPredictor`) and its classification
    loss (``loss_cls``, an :class:`~etf_plugin.det.ETFObjectnessLoss`)
    together from its own arguments, since each only makes sense with the
    other: mmdet takes the scores from the loss. Everything else (shared
    FCs, box regression, ``loss_bbox``, the test path) is
    ``Shared2FCBBoxHead``'s, as in mmdet's ``DoubleConvFCBBoxHead`` or
    ``SABLHead``.

    ``loss_cls`` and ``cls_predictor_cfg`` are what a Faster R-CNN base
    config gives the linear head; they must stay the linear head's softmax
    ``CrossEntropyLoss`` (whose ``loss_weight`` becomes the ETF loss's) and
    ``Linear``, and anything else is refused rather than ignored.

    The defaults ``dr_weight=10, class_balanced=True, logit_scale=10`` are
    the values chosen on the held-out split of the synthetic benchmark
    (docs/mmdet.md). ``K`` vertices span ``K - 1`` dimensions, so LVIS's
    1203 classes need ``fc_out_channels >= 1202``.

    Args:
        fc_out_channels (int): Width of the two shared FCs, which feed the
            ETF, the objectness logit and the box regressor. Defaults to
            1024.
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        proj_channels (int, optional): Width of a learnable projection
            before the ETF; needed when ``fc_out_channels < K - 1``.
            Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation, which gives
            the ETF signed features after the head's ReLU. Defaults to True.
        logit_scale (float): ``s`` of the class softmax in the scores.
            Defaults to 10.
        dr_weight (float): Weight of the class (DR) term relative to the
            objectness term. Defaults to 10.
        class_balanced (bool): Class-balanced DR among the positive RoIs.
            Defaults to True.
        loss_cls (dict): The linear head's loss from the base config; only
            its ``loss_weight`` is used. Defaults to mmdet's.
        cls_predictor_cfg (dict): Must stay ``dict(type='Linear')``.
        **kwargs: The other arguments of ``Shared2FCBBoxHead``.
    """

    def __init__(self,
                 fc_out_channels: int = 1024,
                 seed: int = 0,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True,
                 logit_scale: float = 10.0,
                 dr_weight: float = 10.0,
                 class_balanced: bool = True,
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=False,
                     loss_weight=1.0),
                 cls_predictor_cfg: dict = dict(type='Linear'),
                 **kwargs):
        check_replaced_configs(loss_cls, cls_predictor_cfg)
        super().__init__(
            fc_out_channels=fc_out_channels,
            cls_predictor_cfg=dict(
                type=ETFObjectnessPredictor,
                seed=seed,
                proj_channels=proj_channels,
                with_bn=with_bn),
            loss_cls=dict(
                type=ETFObjectnessLoss,
                logit_scale=logit_scale,
                dr_weight=dr_weight,
                class_balanced=class_balanced,
                loss_weight=loss_cls.get('loss_weight', 1.0)),
            **kwargs)


def check_replaced_configs(loss_cls: dict, cls_predictor_cfg: dict) -> None:
    """Refuse a ``loss_cls`` or ``cls_predictor_cfg`` that ``ETFBBoxHead``
    would otherwise silently replace.

    Args:
        loss_cls (dict): The ``loss_cls`` given to the head.
        cls_predictor_cfg (dict): The ``cls_predictor_cfg`` given to it.
    """
    loss_type = str(loss_cls.get('type', '')).split('.')[-1]
    if (loss_type != 'CrossEntropyLoss' or loss_cls.get('use_sigmoid')
            or set(loss_cls) - {'type', 'use_sigmoid', 'loss_weight'}):
        raise ValueError(
            f'ETFBBoxHead trains its classifier with its own loss (objectness '
            f'cross-entropy + dot regression, set by the head\'s dr_weight, '
            f'class_balanced and logit_scale); loss_cls may only be the '
            f'linear head\'s softmax CrossEntropyLoss it replaces, whose '
            f'loss_weight it keeps. Got loss_cls={dict(loss_cls)}: write '
            f'loss_cls=dict(_delete_=True, type=\'CrossEntropyLoss\', '
            f'loss_weight=1.0) and the ETF options on the head.')
    predictor_type = str(cls_predictor_cfg.get('type', '')).split('.')[-1]
    if predictor_type != 'Linear' or len(cls_predictor_cfg) > 1:
        raise ValueError(
            f'ETFBBoxHead builds its own RoI classifier; got '
            f'cls_predictor_cfg={dict(cls_predictor_cfg)}. Drop '
            f'cls_predictor_cfg (cls_predictor_cfg=dict(_delete_=True, '
            f'type=\'Linear\')) and set seed, proj_channels or with_bn on '
            f'the head.')
