import pytest
import torch
import torch.nn.functional as F

from etf_plugin.functional import (check_labels, class_balanced_weights,
                                   dot_regression_loss, hard_label_counts,
                                   simplex_etf)


def _features(n=12, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64)


def test_value_is_half_squared_cosine_gap():
    etf = simplex_etf(5, 16, dtype=torch.float64)
    h = F.normalize(_features(), dim=1)
    labels = torch.arange(12) % 5
    cos = h @ etf.T
    expected = 0.5 * (cos[torch.arange(12), labels] - 1)**2
    # one loss per sample; the reduction is the loss module's
    assert torch.allclose(dot_regression_loss(cos, labels), expected)
    # soft one-hot targets give the same values as the labels
    assert torch.allclose(
        dot_regression_loss(cos, F.one_hot(labels, 5).double()), expected)


def test_gradient_is_pull_only_along_own_class_vector():
    etf = simplex_etf(10, 32, dtype=torch.float64)
    h_hat = F.normalize(_features(8, 32), dim=1).requires_grad_()
    labels = torch.tensor([0, 1, 2, 3, 9, 9, 4, 7])
    dot_regression_loss(h_hat @ etf.T, labels).sum().backward()
    for i, y in enumerate(labels):
        grad, w_y = h_hat.grad[i], etf[y]
        # no component outside span(w_y): no push from other classes
        residual = grad - (grad @ w_y) * w_y
        assert residual.norm() < 1e-12 * max(grad.norm(), 1)
        # and it pulls toward w_y: -grad points along +w_y
        assert torch.isclose(grad @ w_y, (h_hat[i] @ w_y - 1).detach())

    # Cross-entropy on the same cosines has push terms: the check above
    # would fail for it.
    h_hat.grad = None
    F.cross_entropy(h_hat @ etf.T, labels, reduction='sum').backward()
    grad, w_y = h_hat.grad[0], etf[0]
    assert (grad - (grad @ w_y) * w_y).norm() > 1e-3


def test_soft_target_is_convex_combination():
    etf = simplex_etf(4, 8, dtype=torch.float64)
    cos = F.normalize(_features(6, 8), dim=1) @ etf.T
    a = torch.tensor([0, 1, 2, 3, 0, 1])
    b = torch.tensor([3, 2, 1, 0, 2, 3])
    lam = 0.3
    soft = lam * F.one_hot(a, 4) + (1 - lam) * F.one_hot(b, 4)
    mixed = dot_regression_loss(cos, soft.double())
    expected = lam * dot_regression_loss(cos, a) + (
        1 - lam) * dot_regression_loss(cos, b)
    assert torch.allclose(mixed, expected)


def test_class_balanced_lengths_equalise_class_totals():
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 0])
    counts = torch.bincount(labels, minlength=4).double()
    weights = class_balanced_weights(counts)
    gamma = 10 / 3
    assert torch.allclose(weights,
                          torch.tensor([gamma / 7, gamma / 2, gamma, 1.0],
                                       dtype=torch.float64))
    # with equal per-sample terms, every present class contributes gamma
    cos = torch.zeros(10, 4, dtype=torch.float64)
    per_sample = dot_regression_loss(cos, labels, class_balanced=True)
    totals = torch.zeros(4, dtype=torch.float64).index_add_(
        0, labels, per_sample)
    assert torch.allclose(totals[:3], torch.full((3, ), 0.5 * gamma,
                                                 dtype=torch.float64))
    # and given counts (e.g. summed over ranks) replace the batch's
    per_sample_global = dot_regression_loss(
        cos,
        labels,
        class_balanced=True,
        class_counts=torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert torch.allclose(per_sample_global, 0.5 * torch.ones(10).double())


def test_class_balanced_counts_hard_labels_of_soft_targets():
    # Label smoothing (eps 0.1, K = 100, batch 32): summing the soft scores
    # would make all 100 classes look present and give the ~80 absent ones
    # weights ~1/eps; counted by hard labels the absent classes keep weight
    # 1 and carry only the smoothing mass.
    g = torch.Generator().manual_seed(0)
    num_classes, eps = 100, 0.1
    labels = torch.randint(0, 20, (32, ), generator=g)
    smooth = (1 - eps) * F.one_hot(labels, num_classes).double() + \
        eps / num_classes
    assert torch.equal(hard_label_counts(smooth, num_classes),
                       hard_label_counts(labels, num_classes))
    cos = torch.zeros(32, num_classes, dtype=torch.float64)
    weighted = dot_regression_loss(cos, smooth, class_balanced=True)
    weights = class_balanced_weights(hard_label_counts(labels, num_classes))
    absent = weights.new_ones(num_classes, dtype=torch.bool)
    absent[labels] = False
    share = (smooth * weights.double())[:, absent].sum() / (
        smooth * weights.double()).sum()
    assert share < 0.1  # was 0.84 when soft scores were counted
    assert torch.allclose(weighted, 0.5 * (smooth * weights.double()).sum(1))
    # Mixup with one ratio per batch: the same counts as the un-mixed labels
    perm = torch.randperm(32, generator=g)
    mixed = 0.3 * F.one_hot(labels, num_classes) + 0.7 * F.one_hot(
        labels[perm], num_classes)
    assert torch.equal(hard_label_counts(mixed.double(), num_classes),
                       hard_label_counts(labels, num_classes))


def test_unnormalised_variant_matches_released_formula():
    # (t^T h - ||t|| ||h||)^2 / ||h|| / 2 with ||h|| detached, plus
    # norm_reg * mean ||h|| (the authors' ImageNet-LT loss)
    etf = simplex_etf(6, 12, dtype=torch.float64)
    h = (3 * _features(9, 12)).requires_grad_()
    labels = torch.arange(9) % 6
    norm = h.norm(dim=1)
    loss = dot_regression_loss(
        h @ etf.T, labels, feat_norm=norm, norm_reg=0.01).mean()
    t = etf[labels]
    n = norm.detach()
    expected = (0.5 * ((t * h).sum(1) - n)**2 / n).mean() + 0.01 * norm.mean()
    assert torch.isclose(loss, expected)
    grad, = torch.autograd.grad(loss, h, retain_graph=True)
    grad_expected, = torch.autograd.grad(expected, h)
    assert torch.allclose(grad, grad_expected)


def test_bad_labels_and_shapes():
    cos = torch.zeros(3, 4)
    with pytest.raises(ValueError, match='Label 4 is outside'):
        check_labels(torch.tensor([0, 4, 1]), 4)
    with pytest.raises(ValueError, match='outside'):
        check_labels(torch.tensor([0, -1, 1]), 4)
    check_labels(torch.tensor([0, 3, 1]), 4)
    with pytest.raises(ValueError, match='Soft targets have 3 classes'):
        check_labels(torch.zeros(3, 3), 4)
    # the loss itself reads no label on the host; its gather refuses them
    with pytest.raises((IndexError, RuntimeError)):
        dot_regression_loss(cos, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match='Soft targets have 3 classes'):
        dot_regression_loss(cos, torch.zeros(3, 3))
    with pytest.raises(ValueError, match='feat_norm'):
        dot_regression_loss(cos, torch.tensor([0, 1, 2]), norm_reg=0.1)


def test_zero_norm_features_give_finite_loss():
    cos = torch.zeros(2, 3, requires_grad=True)
    loss = dot_regression_loss(
        cos, torch.tensor([0, 1]), feat_norm=torch.zeros(2)).sum()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(cos.grad).all()
