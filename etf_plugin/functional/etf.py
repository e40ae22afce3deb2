"""The simplex equiangular tight frame (ETF): the one place it is built.

A simplex ETF of ``K`` unit vectors has pairwise cosine ``-1/(K-1)``, the most
negative value ``K`` equal-norm vectors can share, and sums to zero. Yang et
al. (NeurIPS 2022) write it as ``M = sqrt(K/(K-1)) U (I_K - 11^T/K)`` with
``U^T U = I_K``, which needs ``dim >= K``. The vectors span only ``K - 1``
dimensions, so we build the same Gram matrix from a ``dim x (K-1)`` orthonormal
``U``: that also works for ``dim == K - 1``.
"""
import math

import torch

# Largest |W W^T - K/(K-1) (I - 11^T/K)| accepted for a loaded ETF: float32
# rounding of a float64 construction stays below 1e-6 up to K = 1000,
# d = 4096, and half precision below 1e-3.
ETF_GRAM_TOLERANCE = 1e-3

# Floor of safe_normalize: gradients through a zero feature are at most
# 1 / NORM_EPS = 1e3 times the upstream gradient, and a feature of norm 1 is
# normalised to within 5e-7 of unit length.
NORM_EPS = 1e-3


def simplex_etf(num_classes: int,
                dim: int,
                seed: int = 0,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return a random simplex ETF as a ``(num_classes, dim)`` matrix.

    Row ``k`` is the unit class vector ``w_k``; rows have pairwise cosine
    ``-1/(K-1)`` and sum to zero. The rows follow ``nn.Linear.weight`` layout,
    so logits are ``features @ etf.T``.

    Construction: ``B`` (``K x (K-1)``) is an orthonormal basis of the
    subspace orthogonal to the all-ones vector (deterministic, from a QR of the
    centring matrix), ``U`` (``dim x (K-1)``) has orthonormal columns drawn from
    a seeded Gaussian, and ``W^T = sqrt(K/(K-1)) U B^T``. Hence
    ``W W^T = K/(K-1) (I_K - 11^T/K)``: the simplex ETF Gram matrix. The draw
    is done in float64 on the CPU with a private generator, so the same
    ``(num_classes, dim, seed)`` gives the same matrix in every process and on
    every rank, whatever the global RNG state.

    Args:
        num_classes (int): Number of vertices ``K`` (at least 2).
        dim (int): Ambient dimension; must be at least ``K - 1``.
        seed (int): Seed of the random rotation ``U``. Defaults to 0.
        dtype (torch.dtype): Dtype of the result. Defaults to float32.

    Returns:
        torch.Tensor: The ETF, shape ``(num_classes, dim)``, on the CPU.
    """
    check_etf_shape(num_classes, dim)
    k = num_classes
    centring = torch.eye(k, dtype=torch.float64) - 1.0 / k
    basis, _ = torch.linalg.qr(centring[:, :k - 1])  # K x (K-1)
    generator = torch.Generator().manual_seed(int(seed))
    gaussian = torch.randn(dim, k - 1, generator=generator, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(gaussian)  # dim x (K-1), orthonormal columns
    etf = math.sqrt(k / (k - 1)) * basis @ rotation.T  # K x dim
    return etf.to(dtype)


def check_etf_shape(num_classes: int, dim: int) -> None:
    """Raise a ``ValueError`` unless a ``num_classes``-vertex ETF fits in
    ``dim`` dimensions.

    Args:
        num_classes (int): Number of classes ``K``.
        dim (int): Feature dimension the ETF lives in.
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            f'A simplex ETF needs num_classes >= 2, got {num_classes}.')
    if dim < num_classes - 1:
        raise ValueError(
            f'A simplex ETF of {num_classes} classes spans {num_classes - 1} '
            f'dimensions, but the features have only {dim}. Raise the '
            f'feature dimension, or let ETFHead project the features first '
            f'with a learnable layer: ETFHead(..., '
            f'proj_channels={num_classes - 1}) or larger.')


def etf_gram_error(etf: torch.Tensor) -> float:
    """Largest deviation of ``etf``'s Gram matrix from the simplex ETF Gram.

    Useful as a check on loaded or broadcast classifiers.

    Args:
        etf (torch.Tensor): Class vectors, shape ``(K, dim)``.

    Returns:
        float: ``max |W W^T - (K/(K-1)) (I - 11^T/K)|``.
    """
    k = etf.shape[0]
    etf = etf.double()
    target = (torch.eye(k, dtype=torch.float64) - 1.0 / k) * (k / (k - 1))
    return (etf @ etf.T - target.to(etf.device)).abs().max().item()


def safe_normalize(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """L2-normalise the rows of ``x`` as ``x / sqrt(||x||^2 + eps^2)``.

    ``F.normalize`` divides by ``max(||x||, eps)``: with a tiny ``eps`` its
    gradient at a zero feature is ``1/eps`` (1e8 for 1e-8), which a dead
    backbone or a collapsed BatchNorm turns into an exploding update. Here
    the Jacobian's norm is at most ``1/eps`` everywhere, the output is zero
    at zero, and a row of norm ``r`` gets norm ``r / sqrt(r^2 + eps^2)``.

    Args:
        x (torch.Tensor): ``(N, d)`` features.
        eps (float): Floor of the norm. Defaults to :data:`NORM_EPS`.

    Returns:
        torch.Tensor: The normalised ``(N, d)`` rows.
    """
    squared = x.square().sum(dim=-1, keepdim=True)
    return x * torch.rsqrt(squared + eps * eps)

