"""``prototype_contrast_loss`` against a loop written from the definition,
and its gradient."""
import math

import torch

from etf_plugin.functional import prototype_contrast_loss


def reference(cosines, labels, tau):
    """Loop over samples in float64: the anchor is the prototype of the
    sample's class, the negatives the other-class samples of the batch."""
    losses, defined = [], []
    for i in range(len(labels)):
        y = int(labels[i])
        positive = math.exp(float(cosines[i, y]) / tau)
        negatives = [
            math.exp(float(cosines[j, y]) / tau)
            for j in range(len(labels)) if int(labels[j]) != y
        ]
        defined.append(bool(negatives))
        losses.append(-math.log(positive / sum(negatives))
                      if negatives else 0.0)
    return torch.tensor(losses, dtype=torch.float64), torch.tensor(defined)


def unit_cosines(n, k, dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    feats = torch.nn.functional.normalize(
        torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=1)
    prototypes = torch.nn.functional.normalize(
        torch.randn(k, dim, generator=generator, dtype=torch.float64), dim=1)
    return feats @ prototypes.t()


def test_matches_reference_loop():
    cosines = unit_cosines(9, 4)
    labels = torch.tensor([0, 1, 1, 2, 0, 2, 2, 1, 0])
    for tau in (0.05, 0.5, 2.0):
        loss = prototype_contrast_loss(cosines, labels, tau)
        expected, defined = reference(cosines, labels, tau)
        torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
        assert defined.all()


def test_batch_of_one_class_has_no_negatives_and_zero_gradient():
    # A class has no negative only when it is the whole batch.
    cosines = unit_cosines(4, 3).requires_grad_()
    labels = torch.tensor([2, 2, 2, 2])
    loss = prototype_contrast_loss(cosines, labels, 0.1)
    expected, defined = reference(cosines.detach(), labels, 0.1)
    assert not defined.any()
    assert torch.equal(loss, expected)
    loss.sum().backward()
    assert torch.equal(cosines.grad, torch.zeros_like(cosines))


def test_small_tau_is_stable():
    cosines = unit_cosines(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = prototype_contrast_loss(cosines.float(), labels, 1e-3)
    expected = -cosines.gather(1, labels[:, None]).squeeze(1) / 1e-3 + \
        torch.stack([(cosines[labels != y, y] / 1e-3).logsumexp(0)
                     for y in labels.tolist()])
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-2)


def test_gradcheck():
    cosines = unit_cosines(5, 3).requires_grad_()
    labels = torch.tensor([0, 1, 0, 2, 1])
    assert torch.autograd.gradcheck(
        lambda c: prototype_contrast_loss(c, labels, 0.3), (cosines, ))


def test_a_per_class_offset_leaves_the_loss_unchanged():
    """Why the study's PC arms have no training-time logit adjustment: a
    sample's ratio uses one prototype's column only, so adding
    ``tau * log(prior_k)`` (any per-class offset) to column k changes no
    loss. A per-sample offset would."""
    torch.manual_seed(0)
    cosines = torch.randn(12, 5).tanh()
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 0, 0, 1, 3])
    tau = 0.3
    offset = torch.randn(5)
    torch.testing.assert_close(
        prototype_contrast_loss(cosines + tau * offset, labels, tau),
        prototype_contrast_loss(cosines, labels, tau))
    per_sample = torch.randn(12, 1)
    assert not torch.allclose(
        prototype_contrast_loss(cosines + per_sample, labels, tau),
        prototype_contrast_loss(cosines, labels, tau))
