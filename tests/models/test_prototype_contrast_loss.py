"""``PrototypeContrastLoss`` as the loss of ``ETFHead`` and
``CosineClsHead``: built from a config dict, fed cosines, compiled."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import etf_plugin  # noqa: F401
from etf_plugin.functional import prototype_contrast_loss
from helpers import data_samples

NUM_CLASSES, DIM, BATCH = 4, 12, 8


def build_head(head_type, **loss_options):
    return MODELS.build(
        dict(type=head_type, num_classes=NUM_CLASSES, in_channels=DIM,
             loss=dict(type='PrototypeContrastLoss', tau=0.2,
                       **loss_options)))


def feats_and_labels(seed=0):
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(BATCH, DIM, generator=generator)
    return feats, torch.tensor([0, 1, 2, 3, 0, 1, 1, 2])


@pytest.mark.parametrize('head_type', ['ETFHead', 'CosineClsHead'])
def test_head_passes_cosines_with_every_prototype(head_type):
    head = build_head(head_type)
    head.train()
    feats, labels = feats_and_labels()
    loss = head.loss((feats, ), data_samples(labels))['loss']
    # The cosines: unit features against the head's unit class vectors.
    x = head.pre_logits((feats, ))
    cosines = x @ head.class_weight().t()
    torch.testing.assert_close(x.norm(dim=1), torch.ones(BATCH))
    expected = prototype_contrast_loss(cosines, labels, 0.2)
    torch.testing.assert_close(loss, expected.mean(), rtol=1e-5, atol=1e-6)
    loss.backward()
    if head_type == 'CosineClsHead':
        assert head.classifier.weight.grad.abs().sum() > 0


def test_reductions_and_a_batch_of_one_class():
    loss = MODELS.build(
        dict(type='PrototypeContrastLoss', tau=0.5, loss_weight=2.0))
    cosines = torch.rand(3, 3) * 2 - 1
    # One class: no negatives anywhere, the loss is 0 (not NaN).
    assert loss(cosines, torch.tensor([1, 1, 1])) == 0
    labels = torch.tensor([0, 1, 1])
    per_sample = loss(cosines, labels, reduction_override='none')
    torch.testing.assert_close(
        per_sample, 2 * prototype_contrast_loss(cosines, labels, 0.5))
    torch.testing.assert_close(loss(cosines, labels), per_sample.mean())
    torch.testing.assert_close(loss(cosines, labels, avg_factor=6),
                               per_sample.sum() / 6)
    weight = torch.tensor([1.0, 0.0, 2.0])
    torch.testing.assert_close(
        loss(cosines, labels, weight=weight, reduction_override='sum'),
        (per_sample * weight).sum())


def test_refuses_soft_targets_and_unnormalised_features():
    loss = MODELS.build(dict(type='PrototypeContrastLoss'))
    cosines = torch.rand(4, 3)
    soft = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    with pytest.raises(ValueError, match='train_cfg=None'):
        loss(cosines, soft)
    head = MODELS.build(
        dict(type='ETFHead', num_classes=3, in_channels=DIM, normalize=False,
             loss=dict(type='PrototypeContrastLoss')))
    with pytest.raises(ValueError, match='normalize=True'):
        head.loss((torch.randn(4, DIM), ),
                  data_samples(torch.tensor([0, 1, 2, 0])))
    with pytest.raises(ValueError, match='tau'):
        MODELS.build(dict(type='PrototypeContrastLoss', tau=0))


@pytest.mark.parametrize('head_type', ['ETFHead', 'CosineClsHead'])
def test_compiles_fullgraph_and_matches_eager(head_type):
    torch._dynamo.reset()
    head = build_head(head_type)
    head.train()
    feats, labels = feats_and_labels(1)
    samples = data_samples(labels)
    eager_feats = feats.clone().requires_grad_()
    eager = head.loss((eager_feats, ), samples)['loss']
    eager.backward()
    compiled = torch.compile(
        lambda f: head.loss((f, ), samples)['loss'], backend='aot_eager',
        fullgraph=True)
    compiled_feats = feats.clone().requires_grad_()
    value = compiled(compiled_feats)
    value.backward()
    torch.testing.assert_close(value.detach(), eager.detach(), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(compiled_feats.grad, eager_feats.grad,
                               rtol=1e-4, atol=1e-6)
