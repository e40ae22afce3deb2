"""``NormalizedClassifier``: the feature neck and cosine scores shared by the
fixed-ETF and the learnable cosine classifiers."""
from typing import Optional

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
        """The ``(K, feature_dim)`` class vectors the features meet."""
        raise NotImplementedError

    def neck(self, x: torch.Tensor) -> torch.Tensor:
        """The features before the L2 normalisation: after the optional
        projection and BatchNorm, in float32."""
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (N, in_channels='
                f'{self.in_channels}) features, got {tuple(x.shape)}. Pool '
                f'feature maps first (neck=dict(type=\'GlobalAveragePooling\''
                f')), take one token of a transformer (e.g. VisionTransformer'
                f'(out_type=\'cls_token\')), or set in_channels to the '
                f'feature width.')
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if self.proj is not None:
                x = self.proj(x)
            if self.bn is not None:
                x = self.bn(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The features that meet the class vectors: :meth:`neck`, then the
        L2 normalisation if enabled."""
        x = self.neck(x)
        return safe_normalize(x) if self.normalize else x

    def dot(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` float32 dot products of :meth:`features` with the class
        vectors (cosines when normalised)."""
        with torch.autocast(features.device.type, enabled=False):
            return features.float() @ self.class_vectors().t().float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` dot products of the input features with the class
        vectors."""
        return self.dot(self.features(x))
