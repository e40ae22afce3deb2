import numpy as np
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.losses import CrossEntropyLoss
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from etf_plugin.models.losses import LogitAdjustedLoss

COUNTS = [60, 25, 10, 5]
PI = [c / 100 for c in COUNTS]


def batch(seed=0, n=6, k=4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * 3
    labels = torch.randint(k, (n, ), generator=g)
    soft = torch.rand(n, k, generator=g)
    soft = soft / soft.sum(1, keepdim=True)
    return logits, labels, soft


@pytest.mark.parametrize('use_soft', [False, True])
def test_tau_zero_is_exactly_cross_entropy(use_soft):
    logits, labels, soft = batch()
    la = LogitAdjustedLoss(tau=0.0, class_counts=COUNTS, use_soft=use_soft)
    ce = CrossEntropyLoss(use_soft=use_soft)
    weight = torch.rand(6)
    targets = [soft] if use_soft else [labels, soft]
    for target in targets:
        assert torch.equal(la(logits, target), ce(logits, target))
        assert torch.equal(
            la(logits, target, weight=weight, avg_factor=4.0),
            ce(logits, target, weight=weight, avg_factor=4.0))
        assert torch.equal(
            la(logits, target, reduction_override='none'),
            ce(logits, target, reduction_override='none'))


def hand_loss(logits, target_probs, tau):
    """-sum_k q_k log softmax(z + tau log pi)_k, in float64, by hand."""
    out = []
    for z, q in zip(logits.double().tolist(), target_probs.double().tolist()):
        adjusted = [zk + tau * math.log(p) for zk, p in zip(z, PI)]
        log_norm = math.log(sum(math.exp(a) for a in adjusted))
        out.append(-sum(qk * (a - log_norm) for qk, a in zip(q, adjusted)))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize('tau', [0.5, 1.0, 2.0])
def test_hard_labels_equal_hand_computation(tau):
    logits, labels, _ = batch(seed=1)
    loss = LogitAdjustedLoss(tau=tau, class_counts=COUNTS, loss_weight=0.5)
    expected = hand_loss(logits, F.one_hot(labels, 4), tau)
    per_sample = loss(logits, labels, reduction_override='none')
    assert torch.allclose(per_sample.double(), 0.5 * expected, atol=1e-5)
    assert loss(logits, labels).item() == pytest.approx(
        0.5 * expected.mean().item(), abs=1e-5)
    # it differs from plain cross-entropy: the adjustment does something
    assert not torch.allclose(
        loss(logits, labels), 0.5 * CrossEntropyLoss()(logits, labels))


@pytest.mark.parametrize('use_soft', [False, True])
def test_soft_targets_equal_hand_computation(use_soft):
    logits, _, soft = batch(seed=2)
    loss = LogitAdjustedLoss(tau=1.0, class_counts=COUNTS, use_soft=use_soft)
    expected = hand_loss(logits, soft, 1.0)
    assert loss(logits, soft).item() == pytest.approx(
        expected.mean().item(), abs=1e-5)


def test_in_linear_cls_head_with_mixup_scores():
    head = MODELS.build(
        dict(
            type='LinearClsHead',
            num_classes=4,
            in_channels=3,
            loss=dict(type='LogitAdjustedLoss', class_counts=COUNTS)))
    assert isinstance(head.loss_module, LogitAdjustedLoss)
    # checkpoints keep the keys of a plain cross-entropy head
    assert set(head.state_dict()) == {'fc.weight', 'fc.bias'}
    feats = (torch.randn(4, 3), )
    _, labels, soft = batch(n=4)
    hard = [DataSample().set_gt_label(int(y)) for y in labels]
    mixed = [DataSample().set_gt_score(q) for q in soft]
    logits = head(feats)
    loss_hard = head.loss(feats, hard)['loss']
    loss_soft = head.loss(feats, mixed)['loss']
    assert loss_hard.item() == pytest.approx(
        hand_loss(logits.detach(), F.one_hot(labels, 4), 1.0).mean().item(),
        abs=1e-5)
    assert loss_soft.item() == pytest.approx(
        hand_loss(logits.detach(), soft, 1.0).mean().item(), abs=1e-5)
    loss_soft.backward()
    assert head.fc.weight.grad is not None


def test_counts_sources(tmp_path):
    path = tmp_path / 'counts.txt'
    path.write_text('\n'.join(map(str, COUNTS)) + '\n')
    logits, labels, _ = batch()
    reference = LogitAdjustedLoss(class_counts=COUNTS)(logits, labels)
    assert torch.equal(
        LogitAdjustedLoss(counts_file=str(path))(logits, labels), reference)
    # ClassCountsHook hands the training set's counts over at run time
    handed = MODELS.build(dict(type='LogitAdjustedLoss'))
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        handed(logits, labels)
    handed.set_class_counts(np.array(COUNTS))
    assert torch.equal(handed(logits, labels), reference)
    # counts given in the config win over the handed ones
    explicit = LogitAdjustedLoss(class_counts=COUNTS)
    explicit.set_class_counts(np.array([1, 1, 1, 1]))
    assert torch.equal(explicit(logits, labels), reference)
    # uniform counts: the adjustment is a constant shift, i.e. plain CE
    uniform = LogitAdjustedLoss()
    uniform.set_class_counts(np.array([7, 7, 7, 7]))
    assert torch.allclose(uniform(logits, labels),
                          torch.nn.functional.cross_entropy(logits, labels))


def test_bad_counts():
    with pytest.raises(ValueError, match='class 2 has 0'):
        LogitAdjustedLoss(class_counts=[5, 3, 0, 1])
    with pytest.raises(ValueError, match='class 2 has 0'):
        LogitAdjustedLoss().set_class_counts(np.array([5, 3, 0, 1]))
    with pytest.raises(ValueError, match='not both'):
        LogitAdjustedLoss(class_counts=COUNTS, counts_file='x.txt')
    with pytest.raises(ValueError, match='non-negative'):
        LogitAdjustedLoss(class_counts=[5, -3, 1, 1])
    loss = LogitAdjustedLoss(class_counts=COUNTS[:3])
    logits, labels, _ = batch()
    with pytest.raises(
            ValueError, match='4 classes but the class prior has '
            '3'):
        loss(logits, labels)
