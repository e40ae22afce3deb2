"""ClassBalancedCrossEntropyLoss: CE with DR's per-batch gamma / c_k."""
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from etf_plugin.functional.dot_regression import (class_balanced_weights,
                                                  hard_label_counts)


def test_weights_are_the_dr_per_batch_weights():
    loss = MODELS.build(dict(type='ClassBalancedCrossEntropyLoss'))
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    weights = class_balanced_weights(hard_label_counts(labels, 4))
    expected = (weights[labels] *
                F.cross_entropy(logits, labels, reduction='none')).mean()
    assert torch.allclose(loss(logits, labels), expected)
    # every present class gets the same total weight gamma = 6 / 3
    per_class = torch.zeros(4).index_add_(0, labels, weights[labels])
    assert torch.allclose(per_class[:3], torch.full((3, ), 2.0))


def test_balanced_batch_is_plain_cross_entropy_and_soft_targets_match():
    loss = MODELS.build(dict(type='ClassBalancedCrossEntropyLoss',
                             loss_weight=2.0))
    logits = torch.randn(4, 4)
    labels = torch.arange(4)
    assert torch.allclose(loss(logits, labels),
                          2 * F.cross_entropy(logits, labels))
    one_hot = F.one_hot(torch.tensor([0, 0, 1, 2]), 4).float()
    assert torch.allclose(loss(logits, one_hot),
                          loss(logits, torch.tensor([0, 0, 1, 2])))
    assert loss(logits, labels, reduction_override='none').shape == (4, )
    assert torch.allclose(
        loss(logits, labels, avg_factor=2.0),
        2 * F.cross_entropy(logits, labels, reduction='sum') / 2.0,
        atol=1e-5)
