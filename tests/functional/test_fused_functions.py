"""The closed-form backward passes of the fused head functions against
autograd, in float64 (``torch.autograd.gradcheck``), and their forward
values against the eager formulas."""
import pytest
import torch
import torch.nn.functional as F

from etf_plugin.functional.dot_regression import (dot_regression_loss,
                                                  dot_regression_sum)
from etf_plugin.functional.etf import NORM_EPS, safe_normalize
from etf_plugin.functional.normalized_dots import normalized_dots

N, D, K = 6, 5, 4


def double(*shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator,
                       dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize('with_bn', [True, False])
@pytest.mark.parametrize('normalize_vectors', [True, False])
def test_normalized_dots_gradcheck(with_bn, normalize_vectors):
    x, vectors = double(N, D, seed=0), double(K, D, seed=1)
    weight, bias = double(D, seed=2), double(D, seed=3)
    eps = torch.tensor(NORM_EPS, dtype=torch.float64)

    def fused(x, vectors, weight, bias):
        return normalized_dots(x, vectors, eps, weight, bias,
                               with_bn=with_bn,
                               normalize_vectors=normalize_vectors,
                               scale=3.0)

    def eager(x, vectors, weight, bias):
        y = F.batch_norm(x, None, None, weight, bias, True) if with_bn \
            else x
        vectors = safe_normalize(vectors) if normalize_vectors else vectors
        return 3.0 * safe_normalize(y) @ vectors.t()

    inputs = (x, vectors, weight, bias)
    torch.testing.assert_close(fused(*inputs), eager(*inputs))
    assert torch.autograd.gradcheck(fused, inputs)


def test_normalized_dots_gradient_through_a_zero_feature_is_bounded():
    # safe_normalize's floor: a zero row has gradient at most 1 / NORM_EPS.
    x = torch.zeros(2, D, dtype=torch.float64, requires_grad=True)
    vectors = double(K, D, seed=1)
    eps = torch.tensor(NORM_EPS, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: normalized_dots(x, vectors.detach(), eps, with_bn=False),
        (x, ))


@pytest.mark.parametrize('weighted', [False, True])
def test_dot_regression_sum_gradcheck(weighted):
    cosines = torch.tanh(double(N, K, seed=4)).detach().requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 1, 1])
    class_weight = (torch.rand(K, dtype=torch.float64) + 0.5
                    if weighted else None)
    expected = 0.25 * dot_regression_loss(
        cosines, labels, class_weight=class_weight).sum()
    torch.testing.assert_close(
        dot_regression_sum(cosines, labels, 0.25, class_weight), expected)
    assert torch.autograd.gradcheck(
        lambda c: dot_regression_sum(c, labels, 0.25, class_weight),
        (cosines, ))


def test_dot_regression_sum_rejects_the_label_nll_loss_would_skip():
    """nll_loss skips -100 by default; the fused DR term must not: a bad
    label stops the kernel like any other out-of-range label."""
    cosines = torch.rand(4, 3, dtype=torch.float64)
    with pytest.raises(IndexError):
        dot_regression_sum(cosines, torch.tensor([0, 1, -100, 2]))
