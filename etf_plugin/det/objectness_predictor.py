"""``ETFObjectnessPredictor``: the RoI classifier that
:class:`~etf_plugin.det.ETFBBoxHead` puts in ``fc_cls``."""
from typing import Optional

import torch
import torch.nn as nn

from etf_plugin.models.utils import ETFClassifier
from etf_plugin.models.utils.etf_classifier import remap_legacy_keys


class ETFObjectnessPredictor(nn.Module):
    """Fixed simplex ETF over the object classes plus a learnable
    objectness logit.

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
        super().__init__()
        num_classes = out_features - 1
        if num_classes < 2:
            raise ValueError(
                f'ETFBBoxHead needs at least 2 object classes, got '
                f'num_classes={num_classes}: set the bbox head\'s '
                f'num_classes to the dataset\'s.')
        etf_dim = in_features if proj_channels is None else proj_channels
        # Checked here rather than left to ETFClassifier: its message names
        # ETFHead's options, a detection user needs the bbox head's.
        if etf_dim < num_classes - 1:
            raise ValueError(
                f'ETFBBoxHead: {num_classes} ETF vertices (one per object '
                f'class) span {num_classes - 1} dimensions, but the RoI '
                f'features have only {etf_dim}. Widen the bbox head (e.g. '
                f'fc_out_channels={num_classes - 1} or more) or project '
                f'first: bbox_head=dict(type=\'ETFBBoxHead\', '
                f'proj_channels={num_classes - 1}).')
        self.in_features = in_features
        self.out_features = out_features
        self.classifier = ETFClassifier(
            num_classes,
            in_features,
            proj_channels=proj_channels,
            with_bn=with_bn,
            seed=seed)
        self.objectness = nn.Linear(in_features, 1)

    @property
    def etf_vectors(self) -> torch.Tensor:
        """The ``(K, dim)`` fixed ETF."""
        return self.classifier.etf_vectors

    def init_weights(self) -> None:
        """Reset the BatchNorm to the identity.

        ``BBoxHead``'s Normal(std=0.01) override of ``fc_cls`` runs first and
        reaches every sub-module with a ``weight``, so it would give the
        BatchNorm random scales near 0. A projection and the objectness
        logit keep that init (the normalisation makes the projection's scale
        irrelevant; the logit starts at p(object) = 1/2); the ETF is a
        buffer and is not touched.
        """
        if self.classifier.bn is not None:
            self.classifier.bn.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K + 1)``: the cosines with the ``K`` class vertices, then
        the objectness logit (float32, like the cosines)."""
        cosines = self.classifier(x)
        return torch.cat([cosines, self.objectness(x).float()], dim=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        remap_legacy_keys(state_dict, prefix)
        key = prefix + 'classifier.etf_vectors'
        loaded = state_dict.get(key)
        if loaded is not None and loaded.shape != self.etf_vectors.shape:
            raise ValueError(self._shape_mismatch(key, tuple(loaded.shape)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _shape_mismatch(self, key: str, shape: tuple) -> str:
        message = (
            f'The checkpoint\'s ETF {key} has shape {shape} but '
            f'ETFBBoxHead builds {tuple(self.etf_vectors.shape)} (classes, '
            f'feature dim): the config does not match the checkpoint (the '
            f'bbox head\'s num_classes, fc_out_channels or proj_channels).')
        if shape[0] == self.etf_vectors.shape[0] + 1:
            message += (
                f' Its {shape[0]} vertices look like a checkpoint of '
                f'ETFPredictor (the background as one more vertex), a design '
                f'etf_plugin no longer has: ETFBBoxHead (K class vertices + '
                f'an objectness logit) replaces it. Retrain with '
                f'bbox_head=dict(type=\'ETFBBoxHead\'), or evaluate the '
                f'checkpoint with etf_plugin 0.1.0.')
        return message
