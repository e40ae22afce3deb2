"""``CosineClassifier``: learnable unit class vectors on the neck of the ETF
classifier."""
from typing import Optional, Union

import torch
import torch.nn as nn

from etf_plugin.functional.etf import safe_normalize, simplex_etf
from .normalized_classifier import NormalizedClassifier, float32_region

INITS = ('etf', 'normal')


class CosineClassifier(NormalizedClassifier):
    """A learnable cosine classifier: the neck of
    :class:`~etf_plugin.models.utils.ETFClassifier`, but the class vectors
    are the trained parameter ``weight``, its rows normalised in every
    forward pass.

    With ``init='etf'`` the rows start at the simplex ETF that
    ``ETFClassifier(seed=seed)`` keeps fixed, so the only difference between
    the two is that these rows are trained: the control that tells the fixed
    geometry apart from the normalising neck.

    Args:
        num_classes (int): Number of classes ``K`` (at least 2).
        in_channels (int): Width of the input features.
        proj_channels (int, optional): Width of an optional projection.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
        init (str): ``'etf'`` (the rows of ``simplex_etf(K, d, seed)``;
            needs ``d >= K - 1``) or ``'normal'`` (Gaussian rows drawn with
            ``seed``). Defaults to ``'etf'``.
        seed (int): Seed of the initial rows. Defaults to 0.
        fused (str | bool): Where the fused path runs (see
            :class:`~etf_plugin.models.utils.NormalizedClassifier`); it also
            normalises the rows. Defaults to ``'auto'`` (CUDA tensors).
    """

    normalizes_class_vectors = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True,
                 init: str = 'etf',
                 seed: int = 0,
                 fused: Union[str, bool] = 'auto'):
        if init not in INITS:
            raise ValueError(f'init must be one of {INITS}, got {init!r}.')
        if num_classes < 2:
            raise ValueError(f'A cosine classifier needs num_classes >= 2, '
                             f'got {num_classes}.')
        super().__init__(num_classes, in_channels, proj_channels, with_bn,
                         normalize=True, fused=fused)
        if init == 'etf':
            rows = simplex_etf(num_classes, self.feature_dim, seed)
        else:
            generator = torch.Generator().manual_seed(int(seed))
            rows = torch.randn(num_classes, self.feature_dim,
                               generator=generator)
        self.weight = nn.Parameter(rows)

    def fused_class_vectors(self) -> torch.Tensor:
        """The raw rows ``weight``: the fused path normalises them."""
        return self.weight

    def class_vectors(self) -> torch.Tensor:
        """The ``(K, d)`` unit class vectors (the normalised rows)."""
        with float32_region(self.weight):
            return safe_normalize(self.weight.float())
