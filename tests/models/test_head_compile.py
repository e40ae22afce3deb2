"""The heads' loss and prediction paths read nothing on the host: they
compile with ``torch.compile(..., fullgraph=True)``, which refuses
data-dependent host reads (``.item()``, ``if tensor``, ``bincount``'s size),
and give the eager results."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import etf_plugin  # noqa: F401
from helpers import data_samples

NUM_CLASSES, DIM, BATCH = 5, 16, 8
LOSSES = {
    'DR': dict(type='DotRegressionLoss'),
    'DR class-balanced': dict(type='DotRegressionLoss', class_balanced=True),
    'CE': dict(type='CrossEntropyLoss'),
    'LA': dict(type='LogitAdjustedLoss', class_counts=[40, 20, 10, 5, 2]),
    'CB-CE': dict(type='ClassBalancedCrossEntropyLoss'),
}
# Every combination compiles with aot_eager (dynamo + AOT autograd, no code
# generation: fast); one case also through inductor's CPU code.
CASES = [(head, loss, soft, 'aot_eager') for head in ('ETFHead',
                                                      'CosineClsHead')
         for loss in LOSSES for soft in (False, True)]
CASES.append(('ETFHead', 'DR class-balanced', True, 'inductor'))
# The fused path (on the CPU only with fused=True): its autograd functions
# trace too, including BatchNorm's in-place running statistics.
FUSED_CASES = [(head, loss, soft, 'aot_eager') for head in ('ETFHead',
                                                            'CosineClsHead')
               for loss in ('DR', 'DR class-balanced', 'CE', 'LA')
               for soft in (False, True)]
FUSED_CASES.append(('ETFHead', 'DR', False, 'inductor'))
FUSED_CASES.append(('CosineClsHead', 'CE', False, 'inductor'))


def batch(soft):
    generator = torch.Generator().manual_seed(0)
    feats = torch.randn(BATCH, DIM, generator=generator)
    labels = torch.arange(BATCH) % NUM_CLASSES
    if not soft:
        return feats, data_samples(labels)
    # Mixup's soft targets: a mix of two one-hot labels
    other = labels.roll(1)
    score = 0.7 * F.one_hot(labels, NUM_CLASSES) + \
        0.3 * F.one_hot(other, NUM_CLASSES)
    return feats, data_samples(labels, soft=score.float())


def loss_and_grad(head, feats, samples):
    feats = feats.clone().requires_grad_()
    loss = head.loss((feats, ), samples)['loss']
    loss.backward()
    return loss.detach(), feats.grad


def build_head(head_type, loss, fused='auto'):
    loss = dict(LOSSES[loss])
    if loss['type'] == 'DotRegressionLoss':
        loss['fused'] = fused
    return MODELS.build(
        dict(type=head_type, num_classes=NUM_CLASSES, in_channels=DIM,
             loss=loss, fused=fused))


def assert_compiled_loss_matches_eager(head, feats, samples, backend):
    """One eager and one compiled training step of ``head`` on the batch
    give the same loss and input gradient."""
    eager_loss, eager_grad = loss_and_grad(head, feats, samples)
    compiled_loss = torch.compile(
        lambda f: head.loss((f, ), samples)['loss'], backend=backend,
        fullgraph=True)
    f = feats.clone().requires_grad_()
    loss_value = compiled_loss(f)
    loss_value.backward()
    # BatchNorm's running statistics moved once more: compare the step's
    # loss and gradient, which use batch statistics only.
    torch.testing.assert_close(loss_value.detach(), eager_loss,
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(f.grad, eager_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('head_type, loss, soft, backend', FUSED_CASES)
def test_fused_loss_compiles_fullgraph_and_matches_eager(
        head_type, loss, soft, backend):
    torch._dynamo.reset()
    head = build_head(head_type, loss, fused=True).train()
    feats, samples = batch(soft)
    assert head.classifier.uses_fused(feats)
    assert_compiled_loss_matches_eager(head, feats, samples, backend)
    # Both steps, eager and compiled, updated the running mean (from 0).
    momentum = head.classifier.bn.momentum
    torch.testing.assert_close(
        head.classifier.bn.running_mean,
        ((1 - momentum) * momentum + momentum) * feats.mean(0))


@pytest.mark.parametrize('head_type, loss, soft, backend', CASES)
def test_loss_and_predict_compile_fullgraph_and_match_eager(
        head_type, loss, soft, backend):
    torch._dynamo.reset()
    head = build_head(head_type, loss).train()
    feats, samples = batch(soft)
    assert_compiled_loss_matches_eager(head, feats, samples, backend)

    head.eval()
    eager_scores = head((feats, ))
    compiled_forward = torch.compile(head, backend=backend, fullgraph=True)
    torch.testing.assert_close(compiled_forward((feats, )), eager_scores,
                               rtol=1e-5, atol=1e-5)
    predictions = head.predict((feats, ))
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in predictions]),
        F.softmax(eager_scores, dim=1))
