"""``NormalizedClassifier``: the feature neck and cosine scores shared by the
fixed-ETF and the learnable cosine classifiers."""
from contextlib import nullcontext
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

from etf_plugin.functional.etf import NORM_EPS, safe_normalize
from etf_plugin.functional.normalized_dots import normalized_dots
from .fused import check_fused, fused_for


class NormalizedClassifier(nn.Module):
    """``x -> [Linear(in_channels, proj_channels)] -> [BatchNorm1d] ->
    [L2 normalisation] -> dot products with K class vectors``.

    Subclasses say what the class vectors are (:meth:`class_vectors`): a
    fixed simplex ETF (:class:`~etf_plugin.models.utils.ETFClassifier`) or
    trained unit rows (:class:`~etf_plugin.models.utils.CosineClassifier`).
    The neck and the dot products run in float32 even under AMP: in half
    precision a cosine near 1 takes only a few distinct values, which would
    quantise a loss that pulls cosines to 1.

    The dot products have two implementations. The eager one is the modules
    above under autograd. The fused one
    (:func:`~etf_plugin.functional.normalized_dots.normalized_dots`) does
    the BatchNorm, the normalisation and the dot products as one autograd
    function with a closed-form backward: the same values and gradients up
    to rounding, in far fewer operators, which is what a GPU step of this
    head costs. It applies when the features are normalised and the
    BatchNorm, if any, is a ``BatchNorm1d`` in training mode with a
    ``momentum``; otherwise (prediction with running statistics,
    ``normalize=False``, cumulative BatchNorm averages, ``SyncBatchNorm``)
    the eager path runs. ``fused='auto'`` takes it for
    CUDA tensors only: on the CPU the eager path stays, whose rounding the
    shipped checkpoints and results were made with.

    Args:
        num_classes (int): Number of classes ``K``.
        in_channels (int): Width of the input features.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
        normalize (bool): L2-normalise the features (the dot products are
            then cosines). Defaults to True.
        fused (str | bool): ``'auto'`` (the fused path for CUDA tensors),
            True (wherever it applies) or False (never). Defaults to
            ``'auto'``.
    """

    # Whether the fused path normalises fused_class_vectors() (inside its
    # autograd function, so the rows' gradient is closed-form too).
    normalizes_class_vectors = False

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True,
                 normalize: bool = True,
                 fused: Union[str, bool] = 'auto'):
        super().__init__()
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f'in_channels must be a positive integer, got '
                             f'{in_channels!r}.')
        self.fused = check_fused(fused)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalize = normalize
        self.feature_dim = in_channels if proj_channels is None else \
            proj_channels
        self.proj = (None if proj_channels is None else nn.Linear(
            in_channels, proj_channels))
        self.bn = nn.BatchNorm1d(self.feature_dim) if with_bn else None
        # NORM_EPS as a tensor: the fused path's hypot takes one. Not
        # persistent, so checkpoints keep their keys.
        self.register_buffer('norm_eps', torch.tensor(NORM_EPS),
                             persistent=False)

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
        return self.scores(x)

    def scores(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``scale`` times the ``(N, K)`` dot products of the input
        features with the class vectors, by the fused path where it applies
        (see the class docstring)."""
        if not self.uses_fused(x):
            dots = self.features_and_dots(x)[1]
            return dots if scale == 1 else scale * dots
        with float32_region(x):
            self._check_input(x)
            x = x if x.dtype == torch.float32 else x.float()
            if self.proj is not None:
                x = self.proj(x)
            return self._fused_scores(x, scale)

    def uses_fused(self, x: torch.Tensor) -> bool:
        """Whether :meth:`scores` takes the fused path for the input ``x``
        (a choice made from shapes, devices and flags, never values)."""
        if not (self.normalize and fused_for(self.fused, x)):
            return False
        # SyncBatchNorm (MMEngine's sync_bn) needs statistics over all
        # ranks: the eager path.
        return self.bn is None or (isinstance(self.bn, nn.BatchNorm1d)
                                   and self.bn.training
                                   and self.bn.momentum is not None)

    def _fused_scores(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        vectors = self.fused_class_vectors()
        vectors = vectors if vectors.dtype == torch.float32 else \
            vectors.float()
        bn = self.bn
        if bn is None:
            return normalized_dots(
                x, vectors, self.norm_eps, with_bn=False,
                normalize_vectors=self.normalizes_class_vectors,
                scale=scale)
        if bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
        return normalized_dots(
            x, vectors, self.norm_eps, bn.weight, bn.bias, bn.running_mean,
            bn.running_var, momentum=bn.momentum, bn_eps=bn.eps,
            normalize_vectors=self.normalizes_class_vectors, scale=scale)

    def fused_class_vectors(self) -> torch.Tensor:
        """What the fused path takes as class vectors: :meth:`class_vectors`,
        or the rows it normalises when :attr:`normalizes_class_vectors`."""
        return self.class_vectors()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects (N, in_channels='
                f'{self.in_channels}) features, got {tuple(x.shape)}. Pool '
                f'feature maps first (neck=dict(type=\'GlobalAveragePooling\''
                f')), take one token of a transformer (e.g. VisionTransformer'
                f'(out_type=\'cls_token\')), or set in_channels to the '
                f'feature width.')

    def _neck(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
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
