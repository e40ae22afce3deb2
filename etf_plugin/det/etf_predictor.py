"""Fixed simplex-ETF RoI classifiers for MMDetection's ``cls_predictor_cfg``.

Both wrap :class:`etf_plugin.models.utils.ETFClassifier`, the one ETF module
of the package; they differ in how the background is scored:

- :class:`ETFObjectnessPredictor` (recommended): the ETF over the ``K``
  object classes only, plus a learnable object/background logit. Pair it
  with :class:`~etf_plugin.det.ETFObjectnessLoss`.
- :class:`ETFPredictor`: the background as a ``(K + 1)``-th ETF vertex.
  Pair it with :class:`~etf_plugin.det.DetDotRegressionLoss`.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS

from etf_plugin.models.utils import ETFClassifier

# Keys of checkpoints saved before the predictors held an ETFClassifier
# (``fc_cls.etf_vectors``, ``fc_cls.bn.*``, ``fc_cls.proj.*``).
_LEGACY_KEYS = ('etf_vectors', 'bn.', 'proj.')


class _ETFRoIPredictor(nn.Module):
    """What the two predictors share: the ETF classifier over
    ``num_vertices`` vertices, the width check, the BatchNorm reset after
    mmdet's init override and the checkpoint checks.

    Args:
        in_features (int): Width of the RoI feature (set by ``BBoxHead``).
        num_vertices (int): Number of ETF vertices.
        what (str): What the vertices are, for error messages.
        seed (int): Seed of the ETF's random rotation.
        proj_channels (int, optional): Width of a learnable projection
            before the ETF.
        with_bn (bool): BatchNorm1d before the normalisation.
    """

    def __init__(self, in_features: int, num_vertices: int, what: str,
                 seed: int, proj_channels: Optional[int], with_bn: bool):
        super().__init__()
        etf_dim = in_features if proj_channels is None else proj_channels
        # Checked here rather than left to ETFClassifier: its message names
        # ETFHead's options, a detection user needs the bbox head's.
        if num_vertices >= 2 and etf_dim < num_vertices - 1:
            raise ValueError(
                f'{type(self).__name__}: {num_vertices} ETF vertices ({what}) '
                f'span {num_vertices - 1} dimensions, but the RoI features '
                f'have only {etf_dim}. Widen the bbox head (e.g. '
                f'fc_out_channels={num_vertices - 1} or more) or project '
                f'first: cls_predictor_cfg=dict(type='
                f'\'{type(self).__name__}\', proj_channels='
                f'{num_vertices - 1}).')
        self.in_features = in_features
        self.classifier = ETFClassifier(
            num_vertices,
            in_features,
            proj_channels=proj_channels,
            with_bn=with_bn,
            seed=seed)

    @property
    def etf_vectors(self) -> torch.Tensor:
        """The ``(vertices, dim)`` fixed ETF."""
        return self.classifier.etf_vectors

    def init_weights(self) -> None:
        """Reset the BatchNorm to the identity.

        ``BBoxHead``'s Normal(std=0.01) override of ``fc_cls`` runs first and
        reaches every sub-module with a ``weight``, so it would give the
        BatchNorm random scales near 0. A projection keeps that init (the
        normalisation makes its scale irrelevant); the ETF is a buffer and
        is not touched.
        """
        if self.classifier.bn is not None:
            self.classifier.bn.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in list(state_dict):
            rest = key[len(prefix):]
            if key.startswith(prefix) and rest.startswith(_LEGACY_KEYS):
                state_dict[prefix + 'classifier.' + rest] = state_dict.pop(key)
        key = prefix + 'classifier.etf_vectors'
        loaded = state_dict.get(key)
        if loaded is not None and loaded.shape != self.etf_vectors.shape:
            raise ValueError(self._shape_mismatch(key, tuple(loaded.shape)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _shape_mismatch(self, key: str, shape: tuple) -> str:
        return (f'The checkpoint\'s ETF {key} has shape {shape} but '
                f'{type(self).__name__} builds '
                f'{tuple(self.etf_vectors.shape)} (vertices, feature dim): '
                f'the config does not match the checkpoint (the bbox head\'s '
                f'num_classes, fc_out_channels or proj_channels).')


@MODELS.register_module()
class ETFObjectnessPredictor(_ETFRoIPredictor):
    """Fixed simplex ETF over the object classes plus a learnable
    objectness logit, for ``cls_predictor_cfg``.

    The two questions a RoI classifier answers are kept apart, as mmdet's
    ``SeesawLoss`` keeps them apart:

    - *Is it an object?* A learnable linear logit ``o`` on the RoI feature,
      trained by :class:`~etf_plugin.det.ETFObjectnessLoss` with a binary
      cross-entropy on every sampled RoI.
    - *Which class?* The cosines of the RoI feature with the ``K`` vertices
      of a fixed simplex ETF (:class:`~etf_plugin.models.utils.
      ETFClassifier`, optional projection and BatchNorm, L2 normalisation),
      trained with the dot-regression loss on the positive RoIs only.

    mmdet's background RoIs, about three quarters of the sampled ones, then
    never pull on the ETF features, and no vertex is spent on a "class"
    that is really the absence of one.

    ``BBoxHead`` sets ``out_features`` to ``loss_cls.get_cls_channels(K) =
    K + 1``; the output is ``(N, K + 1)``: the ``K`` cosines, then ``o``.
    The loss turns it into mmdet's scores ``[p * softmax(s cos), 1 - p]``
    with ``p = sigmoid(o)``.

    ``Shared2FCBBoxHead`` feeds ``fc_cls`` after a ReLU, and a non-negative
    feature reaches a cosine of only about 0.71 with a random ETF vertex:
    keep ``with_bn=True`` (the default) or set ``proj_channels``. The
    objectness logit reads the RoI feature itself, like mmdet's linear
    classifier.

    Args:
        in_features (int): Width of the RoI feature (set by ``BBoxHead``).
        out_features (int): ``K + 1`` (set by ``BBoxHead``).
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width before the ETF; needed when
            ``in_features < K - 1``. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 seed: int = 0,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True):
        num_classes = out_features - 1
        if num_classes < 2:
            raise ValueError(
                f'ETFObjectnessPredictor needs at least 2 object classes '
                f'(out_features = num_classes + 1 >= 3), got out_features='
                f'{out_features}. Pair it with loss_cls=dict(type='
                f'\'ETFObjectnessLoss\') and set the bbox head\'s '
                f'num_classes to the dataset\'s.')
        super().__init__(in_features, num_classes, 'one per object class',
                         seed, proj_channels, with_bn)
        self.out_features = out_features
        self.objectness = nn.Linear(in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)``: the cosines with the ``K`` class vertices, then
        the objectness logit (float32, like the cosines)."""
        cosines = self.classifier(x)
        return torch.cat([cosines, self.objectness(x).float()], dim=1)

    def _shape_mismatch(self, key: str, shape: tuple) -> str:
        message = super()._shape_mismatch(key, shape)
        if shape[0] == self.etf_vectors.shape[0] + 1:
            message += (
                f' Its {shape[0]} vertices look like a checkpoint of '
                f'ETFPredictor (the background as one more vertex): load it '
                f'with cls_predictor_cfg=dict(type=\'ETFPredictor\') and '
                f'loss_cls=dict(type=\'DotRegressionLoss\').')
        return message


@MODELS.register_module()
class ETFPredictor(_ETFRoIPredictor):
    """Fixed simplex-ETF classifier with the background as one more vertex,
    for ``cls_predictor_cfg``.

    With :class:`~etf_plugin.det.DetDotRegressionLoss` as ``loss_cls``,
    ``out_features`` is ``K + 1`` and every one of them is an ETF vertex:
    the background is a class of its own (the last index, as everywhere in
    mmdet), and negative RoIs are regressed onto its vertex. The output is
    the ``(N, K + 1)`` cosines with the vertices; the loss turns them into
    probabilities (``DetDotRegressionLoss.get_activation``).

    On the long-tailed synthetic benchmark (docs/mmdet.md) this design
    loses to :class:`ETFObjectnessPredictor` (0.41 against 0.70 box mAP over
    3 seeds); it is kept for its checkpoints and to reproduce that table.

    ``K + 1`` vertices span ``K`` dimensions, so a head with ``in_features
    < K`` (1024-wide FCs for LVIS's 1203 classes) cannot host them. Widen
    the head (``fc_out_channels``); ``proj_channels`` also lifts the width,
    but a linear map of 1024 features spans only 1024 dimensions, so not
    every vertex is reachable.

    Args:
        in_features (int): Width of the RoI feature (set by ``BBoxHead``).
        out_features (int): Number of vertices, ``num_classes + 1`` (set by
            ``BBoxHead`` from ``loss_cls.get_cls_channels``).
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            False.
    """

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 seed: int = 0,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = False):
        super().__init__(in_features, out_features,
                         'the classes plus the background', seed,
                         proj_channels, with_bn)
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cosines ``(N, out_features)`` of the RoI features with the
        vertices."""
        return self.classifier(x)
