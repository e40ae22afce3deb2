"""``NormalizedClassifier``: the feature neck and cosine scores shared by the
fixed-ETF and the learnable cosine classifiers."""
from contextlib import nullcontext
from typing import Optional, Tuple

import torch
import torch.nn as nn

from etf_plugin.functional.etf import safe_normalize


class NormalizedClassifier(nn.Module):
    """``x -> [Linear(in_channels, proj_channels)] -> [BatchNorm1d] ->
    [L2 normalisation] -> dot products with K class vectors``.

    Subclasses say what the class vectors are (:meth:`class_vectors`): a
    fixed simplex ETF (:class:`~etf_plugin.models.utils.ETFClassifier`) or
    trained unit rows (:class:`~etf_plugin.models.utils.CosineClassifier`).
    The neck and the dot products run in float32 even under AMP: in half
    precision a cosine near 1 takes only a few distinct values, which would
    quantise a loss that pulls cosines to 1.

    Args:
        num_classes (int): Number of classes ``K``.
        in_channels (int): Width of the input features.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
        normalize (bool): L2-normalise the features (the dot products are
            then cosines). Defaults to True.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True,
                 normalize: bool = True):
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f'in_channels must be a positive integer, got '
                             f'{in_channels!r}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalize = normalize
        self.feature_dim = in_channels if proj_channels is None else \
            proj_channels
        self.proj = (None if proj_channels is None else nn.Linear(
            in_channels, proj_channels))
        self.bn = nn.BatchNorm1d(self.feature_dim) if with_bn else None

    def class_vectors(self) -> torch.Tensor:
        """The ``(K, feature_dim)`` float32 class vectors the features meet
        (called inside the float32 region)."""
        raise NotImplementedError

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        """The features before the L2 normalisation: after the optional
        projection and BatchNorm, in float32."""
        with float32_region(x):
            return self._neck(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The features that meet the class vectors: :meth:`neck`, then the
        L2 normalisation if enabled."""
        with float32_region(x):
            return self._features(x)

    def dot(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` float32 dot products of :meth:`features` with the class
        vectors (cosines when normalised)."""
        with float32_region(features):
            return self._dot(features.float())

    def features_and_dots(self, x: torch.Tensor
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` and their :meth:`dot` products in one pass (what
        a head's loss needs)."""
        with float32_region(x):
            features = self._features(x)
            return features, self._dot(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` dot products of the input features with the class
        vectors."""
        return self.features_and_dots(x)[1]

    def _neck(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (N, in_channels='
                f'{self.in_channels}) features, got {tuple(x.shape)}. Pool '
                f'feature maps first (neck=dict(type=\'GlobalAveragePooling\''
                f')), take one token of a transformer (e.g. VisionTransformer'
                f'(out_type=\'cls_token\')), or set in_channels to the '
                f'feature width.')
        x = x.float()  # no copy when it is float32 already
        if self.proj is not None:
            x = self.proj(x)
        if self.bn is not None:
            x = self.bn(x)
        return x

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._neck(x)
        return safe_normalize(x) if self.normalize else x

    def _dot(self, features: torch.Tensor) -> torch.Tensor:
        # .float() is free on float32 tensors and guards a half model.
        return features @ self.class_vectors().float().t()


def float32_region(x: torch.Tensor):
    """A context in which autocast is off on ``x``'s device: the neck and
    the dot products run in float32 (see :class:`NormalizedClassifier`).
    Outside autocast it is a no-op context, which costs less to enter."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return nullcontext()
