"""``ETFClassifier``: the fixed simplex-ETF classifier and its feature neck,
the one module that ``ETFHead`` (MMPretrain) and the RoI predictors
(MMDetection) wrap."""
from typing import Optional, Union

import torch

from etf_plugin.functional.etf import (ETF_GRAM_TOLERANCE, check_etf_shape,
                                       etf_gram_error, simplex_etf)
from .normalized_classifier import NormalizedClassifier

# Keys of checkpoints saved before the heads held an ETFClassifier.
_LEGACY_KEYS = ('etf_vectors', 'bn.', 'proj.')


class ETFClassifier(NormalizedClassifier):
    """Fixed simplex-ETF classifier with an optional learnable neck.

    ``x -> [Linear(in_channels, proj_channels)] -> [BatchNorm1d] ->
    [L2 normalisation] -> dot products with the K fixed class vectors``
    (the neck is :class:`~etf_plugin.models.utils.NormalizedClassifier`'s,
    in float32 even under AMP).

    The class vectors (:func:`etf_plugin.functional.simplex_etf`) are the
    persistent buffer ``etf_vectors``: saved in checkpoints, never trained,
    rebuilt bit-identically from ``seed``. A checkpoint's ETF replaces the
    built one only if it has the same shape and is a simplex ETF (Gram
    matrix within :data:`~etf_plugin.functional.etf.ETF_GRAM_TOLERANCE` of
    ``K/(K-1) (I - 11^T/K)``); anything else (zeros, random or NaN values, a
    config that does not match) is refused with the key in the message.

    Two facts decide the options. Features pooled after a ReLU are
    non-negative, and a non-negative vector reaches a cosine of only about
    0.7 with a random ETF vertex, so ``with_bn=True`` (the authors' neck) is
    the default. And a learnable projection followed by the fixed ETF is, as
    a whole, a learnable classifier (any matrix whose class rows sum to
    zero): ``proj_channels`` makes narrow features usable but gives up the
    fixed geometry on the projected side.

    Args:
        num_classes (int): Number of class vectors ``K`` (at least 2).
        in_channels (int): Width of the input features.
        proj_channels (int, optional): If set, a learnable linear layer maps
            the features to this width first; needed when ``in_channels <
            K - 1``, where no simplex ETF fits. Defaults to None.
        with_bn (bool): BatchNorm1d before the normalisation. Defaults to
            True.
        normalize (bool): L2-normalise the features (the dot products are
            then cosines). Defaults to True.
        seed (int): Seed of the ETF's random rotation. Defaults to 0.
        fused (str | bool): Where the fused path runs (see
            :class:`~etf_plugin.models.utils.NormalizedClassifier`).
            Defaults to ``'auto'`` (CUDA tensors).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 proj_channels: Optional[int] = None,
                 with_bn: bool = True,
                 normalize: bool = True,
                 seed: int = 0,
                 fused: Union[str, bool] = 'auto'):
        super().__init__(num_classes, in_channels, proj_channels, with_bn,
                         normalize, fused)
        check_etf_shape(num_classes, self.feature_dim)
        self.seed = seed
        self.register_buffer('etf_vectors',
                             simplex_etf(num_classes, self.feature_dim, seed))

    def class_vectors(self) -> torch.Tensor:
        """The ``(K, d)`` fixed ETF."""
        return self.etf_vectors

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, in_channels='
                f'{self.in_channels}, normalize={self.normalize}, '
                f'seed={self.seed}')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + 'etf_vectors'
        if key in state_dict:
            check_loaded_etf(state_dict[key], self.etf_vectors, key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def remap_legacy_keys(state_dict: dict, prefix: str) -> None:
    """Move, in place, the keys ``prefix + ('etf_vectors' | 'bn.*' |
    'proj.*')`` of checkpoints saved before a head held its
    :class:`ETFClassifier` to ``prefix + 'classifier.' + ...``.

    Called from the ``_load_from_state_dict`` of a module whose
    ``classifier`` is an ``ETFClassifier`` (``ETFHead``, the RoI predictor).

    Args:
        state_dict (dict): The state dict being loaded.
        prefix (str): The module's prefix in it.
    """
    for key in list(state_dict):
        rest = key[len(prefix):]
        if key.startswith(prefix) and rest.startswith(_LEGACY_KEYS):
            state_dict[prefix + 'classifier.' + rest] = state_dict.pop(key)


def check_loaded_etf(loaded: torch.Tensor, built: torch.Tensor,
                     key: str) -> None:
    """Refuse a checkpoint's ETF that has another shape than the built one
    or is not a simplex ETF.

    mmengine loads checkpoints with ``strict=False``, which would only warn
    about a mismatched shape, and nothing else looks at the values: a
    zeroed or corrupted ETF would score silently.

    Args:
        loaded (torch.Tensor): The checkpoint's tensor.
        built (torch.Tensor): The module's own ETF buffer.
        key (str): Full key of the buffer, for the message.
    """
    if loaded.shape != built.shape:
        raise ValueError(
            f'The checkpoint\'s ETF {key} has shape {tuple(loaded.shape)} '
            f'but the model builds {tuple(built.shape)} (classes, feature '
            f'dim): the config does not match the checkpoint (num_classes, '
            f'in_channels or proj_channels).')
    if not torch.isfinite(loaded).all():
        raise ValueError(f'The checkpoint\'s ETF {key} holds NaN or Inf '
                         f'values: the checkpoint is corrupted.')
    error = etf_gram_error(loaded)
    if error > ETF_GRAM_TOLERANCE:
        raise ValueError(
            f'The checkpoint\'s ETF {key} is not a simplex ETF: its Gram '
            f'matrix is {error:.3g} away from K/(K-1) (I - 11^T/K) '
            f'(tolerance {ETF_GRAM_TOLERANCE:g}). The checkpoint is corrupted '
            f'or was edited; retrain, or load another checkpoint.')
