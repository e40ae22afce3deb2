"""DotRegressionLoss(balance_power=q): dataset-level weights n_k^(-q) from
the training counts (ClassCountsConsumer)."""
import pytest
import torch

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.dot_regression import (dot_regression_loss,
                                                  tempered_class_weights)
from etf_plugin.models.losses import DotRegressionLoss

COUNTS = [100, 10, 1]


def test_tempered_weights():
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    for q in (0.0, 0.5, 1.0):
        w = tempered_class_weights(COUNTS, q).double()
        assert torch.allclose((counts * w).sum(), counts.sum())  # mean 1
        assert torch.allclose(w / w[0], (counts / counts[0]).pow(-q))
    assert torch.equal(tempered_class_weights(COUNTS, 0.0), torch.ones(3))
    # q = 1: every class the same total weight over the training set
    w1 = tempered_class_weights(COUNTS, 1.0).double()
    assert torch.allclose(counts * w1, torch.full((3, ), 111 / 3,
                                                  dtype=torch.float64))
    assert tempered_class_weights([5, 0, 5], 1.0)[1] == 1.0
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        tempered_class_weights(COUNTS, 1.5)


def test_loss_takes_counts_from_the_hook_and_q0_is_plain_dr():
    logits = torch.rand(5, 3)
    labels = torch.tensor([0, 0, 1, 2, 2])
    loss = DotRegressionLoss(balance_power=0.5)
    assert isinstance(loss, ClassCountsConsumer)
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        loss(logits, labels)
    loss.set_class_counts(COUNTS)  # what ClassCountsHook does
    weights = tempered_class_weights(COUNTS, 0.5)
    expected = dot_regression_loss(logits, labels,
                                   class_weight=weights).mean()
    assert torch.allclose(loss(logits, labels), expected)
    assert not torch.allclose(loss(logits, labels),
                              dot_regression_loss(logits, labels).mean())
    plain = DotRegressionLoss(balance_power=0.0, class_counts=COUNTS)
    assert torch.allclose(plain(logits, labels),
                          DotRegressionLoss()(logits, labels))
    # the plain loss never needs counts, and keeps its state-dict keys
    assert DotRegressionLoss().state_dict() == {}
    assert loss.state_dict() == {}


def test_options_exclude_each_other():
    with pytest.raises(ValueError, match='exclude'):
        DotRegressionLoss(balance_power=0.5, class_balanced=True)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        DotRegressionLoss(balance_power=-0.1)
    with pytest.raises(ValueError, match='not both'):
        dot_regression_loss(torch.rand(2, 3), torch.tensor([0, 1]),
                            class_balanced=True,
                            class_weight=torch.ones(3))
