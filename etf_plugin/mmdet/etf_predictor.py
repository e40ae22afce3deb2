from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS

from etf_plugin.functional import (check_etf_shape, check_loaded_etf,
                                   simplex_etf)
from etf_plugin.models.heads.etf_head import NORM_EPS


@MODELS.register_module()
class ETFPredictor(nn.Module):
    """Fixed simplex-ETF classifier for MMDetection's ``cls_predictor_cfg``.

    mmdet's ``BBoxHead`` builds its classifier ``fc_cls`` from
    ``cls_predictor_cfg`` with ``in_features`` (the RoI feature width) and
    ``out_features``. With :class:`DetDotRegressionLoss` as ``loss_cls``,
    ``out_features`` is ``num_classes + 1``: the background is a class of its
    own, the last index as everywhere in mmdet, and gets the last of the
    ``K + 1`` ETF vertices. Negative RoIs are thus pulled onto their own
    vertex, as far from every object class as the foreground classes are from
    each other, and the ``K + 1`` classes share the space evenly however rare
    an object class is.

    The vertices come from :func:`etf_plugin.functional.simplex_etf`, exactly
    as in ``ETFHead``, and are kept in the persistent buffer ``etf_vectors``
    (saved in checkpoints, never trained). The buffer is deliberately not
    called ``weight``: ``BBoxHead``'s default ``init_cfg`` overrides
    ``fc_cls`` with a Normal init, which would overwrite any ``weight``.

    The feature fed to the ETF is the RoI feature, optionally projected by a
    learnable linear layer (``proj_features``) and batch-normalised
    (``with_bn``), then L2-normalised with the same epsilon as ``ETFHead``.
    The output is the ``(N, K + 1)`` cosines with the vertices; the loss
    turns them into probabilities (``DetDotRegressionLoss.get_activation``).

    Two properties of mmdet's heads matter for the choice of options:

    - ``Shared2FCBBoxHead`` feeds ``fc_cls`` after a ReLU. A non-negative
      feature reaches a cosine of only about 0.71 with a random ETF vertex
      (the norm of the vertex's positive part), so use ``with_bn=True`` (the
      authors' CIFAR/ImageNet heads) or ``proj_features`` to give the ETF
      signed features.
    - ``K + 1`` vertices span ``K`` dimensions, so a head with ``in_features
      < K`` (1024-wide FCs for LVIS's 1203 classes) cannot host them. Widen
      the head (``fc_out_channels``); ``proj_features`` also lifts the width,
      but a linear map of 1024 features spans only 1024 dimensions, so not
      every vertex is reachable.

    Args:
        in_features (int): Width of the RoI feature (set by ``BBoxHead``).
        out_features (int): Number of vertices, ``num_classes + 1`` (set by
            ``BBoxHead`` from ``loss_cls.get_cls_channels``).
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        proj_features (int, optional): If set, a learnable linear layer maps
            the features to this width first. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            False.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 seed: int = 0,
                 proj_features: Optional[int] = None,
                 with_bn: bool = False):
        super().__init__()
        etf_dim = in_features if proj_features is None else proj_features
        if etf_dim < out_features - 1:
            raise ValueError(
                f'ETFPredictor: {out_features} ETF vertices (classes plus '
                f'background) span {out_features - 1} dimensions, but the '
                f'RoI features have only {etf_dim}. Widen the bbox head '
                f'(e.g. fc_out_channels={out_features - 1} or more) or set '
                f'cls_predictor_cfg=dict(type=\'ETFPredictor\', '
                f'proj_features={out_features - 1}).')
        check_etf_shape(out_features, etf_dim)
        self.in_features = in_features
        self.out_features = out_features
        self.seed = seed
        self.proj = (None if proj_features is None else nn.Linear(
            in_features, proj_features))
        self.bn = nn.BatchNorm1d(etf_dim) if with_bn else None
        self.register_buffer('etf_vectors',
                             simplex_etf(out_features, etf_dim, seed))

    def init_weights(self) -> None:
        """Reset the BatchNorm to the identity.

        ``BBoxHead``'s Normal(std=0.01) override of ``fc_cls`` runs first and
        reaches every sub-module with a ``weight``, so it would give the
        BatchNorm random scales near 0. The projection keeps that init (the
        normalisation makes its scale irrelevant); the ETF is a buffer and
        is not touched.
        """
        if self.bn is not None:
            self.bn.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cosines ``(N, out_features)`` of the RoI features with the
        vertices."""
        if self.proj is not None:
            x = self.proj(x)
        if self.bn is not None:
            x = self.bn(x)
        x = F.normalize(x, dim=1, eps=NORM_EPS)
        return x @ self.etf_vectors.t().to(x.dtype)

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, '
                f'out_features={self.out_features}, seed={self.seed}')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_loaded_etf(state_dict, prefix + 'etf_vectors', self.etf_vectors,
                         type(self).__name__)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
