"""BatchNorm, safe L2 normalisation and dot products with class vectors as
one autograd function with a closed-form backward.

This is the fused path of
:class:`~etf_plugin.models.utils.NormalizedClassifier`: the same maths as
its eager path (``BatchNorm1d`` in training mode, then
:func:`~etf_plugin.functional.etf.safe_normalize`, then ``features @
vectors.T``), in a few operators. On a GPU the eager head is bound by its
operator launches, not by arithmetic; autograd's backward of
``safe_normalize`` alone is twelve operators, the closed form below four.
The two round differently in the last bits, which is why the eager path
stays the default on the CPU (see ``docs/performance.md``).

For rows ``h = y / r`` with ``r = sqrt(||y||^2 + eps^2)`` (what
``safe_normalize`` computes), the gradient is ``(g - h (h . g)) / r``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def unit_rows(x: torch.Tensor, eps: torch.Tensor):
    """``safe_normalize`` in three operators: the rows ``x / r`` and their
    ``(N, 1)`` divisors ``r = sqrt(||x||^2 + eps^2)``.

    Args:
        x (torch.Tensor): ``(N, d)`` rows.
        eps (torch.Tensor): 0-dim floor of the norm (a tensor, so that
            ``hypot`` computes ``r`` in one operator).

    Returns:
        tuple[torch.Tensor, torch.Tensor]: The unit rows and ``r``.
    """
    divisor = torch.hypot(torch.linalg.vector_norm(x, dim=1, keepdim=True),
                          eps)
    return x / divisor, divisor


def unit_rows_backward(grad: torch.Tensor, unit: torch.Tensor,
                       divisor: torch.Tensor) -> torch.Tensor:
    """Gradient w.r.t. ``x`` of :func:`unit_rows` given the gradient
    ``grad`` w.r.t. its rows: ``(g - h (h . g)) / r``."""
    along = (unit * grad).sum(dim=1, keepdim=True)
    return torch.addcmul(grad, unit, along, value=-1).div_(divisor)


class _NormalizedDots(torch.autograd.Function):
    """See :func:`normalized_dots`."""

    @staticmethod
    def forward(ctx, x, bn_weight, bn_bias, running_mean, running_var,
                vectors, norm_eps, with_bn, momentum, bn_eps,
                normalize_vectors, scale):
        mean = invstd = None
        y = x
        if with_bn:
            y, mean, invstd = torch.native_batch_norm(
                x, bn_weight, bn_bias, running_mean, running_var, True,
                momentum, bn_eps)
        features, feature_divisor = unit_rows(y, norm_eps)
        vector_divisor = None
        if normalize_vectors:
            vectors, vector_divisor = unit_rows(vectors, norm_eps)
        dots = F.linear(features, vectors)
        if scale != 1:
            dots = dots * scale
        ctx.save_for_backward(x, bn_weight, mean, invstd, features,
                              feature_divisor, vectors, vector_divisor)
        ctx.with_bn, ctx.bn_eps = with_bn, bn_eps
        ctx.normalize_vectors, ctx.scale = normalize_vectors, scale
        return dots

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x, bn_weight, mean, invstd, features, feature_divisor, vectors,
         vector_divisor) = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if ctx.scale != 1:
            grad = grad * ctx.scale
        grad_vectors = None
        if needs[5]:
            grad_vectors = grad.t().mm(features)
            if ctx.normalize_vectors:
                grad_vectors = unit_rows_backward(grad_vectors, vectors,
                                                  vector_divisor)
        grad_x = grad_weight = grad_bias = None
        if any(needs[:3]):
            grad_y = unit_rows_backward(grad.mm(vectors), features,
                                        feature_divisor)
            if ctx.with_bn:
                grad_x, grad_weight, grad_bias = \
                    torch.ops.aten.native_batch_norm_backward(
                        grad_y, x, bn_weight, None, None, mean, invstd, True,
                        ctx.bn_eps, [needs[0], needs[1], needs[2]])
            else:
                grad_x = grad_y
        return (grad_x, grad_weight, grad_bias, None, None, grad_vectors,
                None, None, None, None, None, None)


def normalized_dots(x: torch.Tensor,
                    vectors: torch.Tensor,
                    norm_eps: torch.Tensor,
                    bn_weight: Optional[torch.Tensor] = None,
                    bn_bias: Optional[torch.Tensor] = None,
                    running_mean: Optional[torch.Tensor] = None,
                    running_var: Optional[torch.Tensor] = None,
                    with_bn: bool = True,
                    momentum: float = 0.1,
                    bn_eps: float = 1e-5,
                    normalize_vectors: bool = False,
                    scale: float = 1.0) -> torch.Tensor:
    """``scale * safe_normalize(BatchNorm(x)) @ vectors.T``, forward and
    backward in a few operators each.

    The BatchNorm is the training-mode one (batch statistics); it updates
    ``running_mean`` and ``running_var`` in place as ``nn.BatchNorm1d``
    does (``momentum``, unbiased variance). Nothing is read on the host.

    Args:
        x (torch.Tensor): ``(N, d)`` float features.
        vectors (torch.Tensor): ``(K, d)`` class vectors; they get a
            gradient when they require one.
        norm_eps (torch.Tensor): 0-dim floor of the norms (``NORM_EPS``).
        bn_weight (torch.Tensor, optional): ``(d,)`` BatchNorm scale.
        bn_bias (torch.Tensor, optional): ``(d,)`` BatchNorm shift.
        running_mean (torch.Tensor, optional): ``(d,)`` running mean.
        running_var (torch.Tensor, optional): ``(d,)`` running variance.
        with_bn (bool): Apply the BatchNorm. Defaults to True.
        momentum (float): Update factor of the running statistics.
        bn_eps (float): BatchNorm's ``eps``.
        normalize_vectors (bool): Use ``safe_normalize(vectors)`` (the
            learnable cosine classifier). Defaults to False.
        scale (float): Factor of the dot products (a logit scale).

    Returns:
        torch.Tensor: ``(N, K)`` scaled cosines.
    """
    return _NormalizedDots.apply(x, bn_weight, bn_bias, running_mean,
                                 running_var, vectors, norm_eps, with_bn,
                                 momentum, bn_eps, normalize_vectors, scale)
