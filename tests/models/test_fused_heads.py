"""The fused path of ETFHead / CosineClsHead (and DotRegressionLoss) keeps
every behaviour of the eager one: values, gradients, BatchNorm state, AMP's
float32 region; and ``fused='auto'`` leaves the CPU on the eager path."""
import copy

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
    'DR tempered': dict(type='DotRegressionLoss', balance_power=0.5,
                        class_counts=[40, 20, 10, 5, 2], loss_weight=2.0),
    'CE': dict(type='CrossEntropyLoss'),
    'LA': dict(type='LogitAdjustedLoss', class_counts=[40, 20, 10, 5, 2]),
}
HEADS = ('ETFHead', 'CosineClsHead')


def build(head_type, loss, fused, **kwargs):
    loss = dict(LOSSES[loss])
    if loss['type'] == 'DotRegressionLoss':
        loss['fused'] = fused
    torch.manual_seed(0)
    head = MODELS.build(
        dict(type=head_type, num_classes=NUM_CLASSES, in_channels=DIM,
             loss=loss, fused=fused, **kwargs))
    bn = head.classifier.bn
    if bn is not None:  # not the identity affine map
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    return head.train()


def batch(soft=False, dtype=torch.float32):
    generator = torch.Generator().manual_seed(1)
    feats = torch.randn(BATCH, DIM, generator=generator).to(dtype)
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 0])
    if not soft:
        return feats, data_samples(labels)
    score = 0.7 * F.one_hot(labels, NUM_CLASSES) + \
        0.3 * F.one_hot(labels.roll(1), NUM_CLASSES)
    return feats, data_samples(labels, soft=score.float())


def step(head, feats, samples):
    """Loss and the gradients of the input and every parameter."""
    feats = feats.clone().requires_grad_()
    head.zero_grad(set_to_none=True)
    loss = head.loss((feats, ), samples)['loss']
    loss.backward()
    grads = {name: p.grad for name, p in head.named_parameters()}
    return loss.detach(), feats.grad, grads


def assert_same_step(fused, eager, feats, samples, rtol=1e-5, atol=1e-6):
    fused_loss, fused_grad, fused_params = step(fused, feats, samples)
    eager_loss, eager_grad, eager_params = step(eager, feats, samples)
    torch.testing.assert_close(fused_loss, eager_loss, rtol=rtol, atol=atol)
    torch.testing.assert_close(fused_grad, eager_grad, rtol=rtol, atol=atol)
    assert fused_params.keys() == eager_params.keys()
    for name, grad in eager_params.items():
        torch.testing.assert_close(fused_params[name], grad, rtol=rtol,
                                   atol=atol, msg=name)
    for name, buffer in eager.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], buffer,
                                   msg=name)


@pytest.mark.parametrize('head_type', HEADS)
@pytest.mark.parametrize('loss', list(LOSSES))
def test_fused_step_matches_eager(head_type, loss):
    fused, eager = build(head_type, loss, True), build(head_type, loss, False)
    feats, samples = batch()
    assert fused.classifier.uses_fused(feats)
    assert_same_step(fused, eager, feats, samples)
    # BatchNorm's running statistics and counter moved alike (checked in
    # assert_same_step); a second step starts from them.
    assert_same_step(fused, eager, feats * 2 + 1, samples)


@pytest.mark.parametrize('options', [
    dict(with_bn=False),
    dict(proj_channels=12, init_cfg=dict(type='Normal', layer='Linear',
                                         std=0.1)),
])
def test_fused_step_matches_eager_without_bn_and_with_projection(options):
    if 'init_cfg' in options:
        fused = build('ETFHead', 'DR', True, **options)
        fused.init_weights()
        eager = copy.deepcopy(fused)
        eager.classifier.fused = eager.loss_module.fused = False
    else:
        fused = build('CosineClsHead', 'DR', True, **options)
        eager = build('CosineClsHead', 'DR', False, **options)
    feats, samples = batch()
    assert_same_step(fused, eager, feats, samples)


def test_soft_targets_eval_mode_and_cumulative_bn_fall_back_to_eager():
    fused, eager = build('ETFHead', 'DR', True), build('ETFHead', 'DR', False)
    feats, samples = batch(soft=True)
    # Mixup's soft targets: the eager DR, on the fused features.
    assert_same_step(fused, eager, feats, samples)
    fused.eval(), eager.eval()
    assert not fused.classifier.uses_fused(feats)
    assert torch.equal(fused((feats, )), eager((feats, )))
    fused.train()
    fused.classifier.bn.momentum = None
    assert not fused.classifier.uses_fused(feats)
    # MMEngine's sync_bn: statistics over all ranks, not the local ones.
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        build('ETFHead', 'DR', True))
    assert not synced.classifier.uses_fused(feats)


@pytest.mark.parametrize('head_type', HEADS)
def test_fused_keeps_the_float32_region_under_autocast(head_type):
    fused = build(head_type, 'DR', True)
    eager = build(head_type, 'DR', False)
    feats, samples = batch(dtype=torch.bfloat16)
    results = []
    for head in (fused, eager):
        f = feats.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            scores = head.classifier.scores(f)
            loss = head.loss((f, ), samples)['loss']
        loss.backward()
        assert scores.dtype == torch.float32
        assert f.grad.dtype == torch.bfloat16
        results.append((loss.detach(), f.grad.float()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=2e-2,
                               atol=1e-4)


@pytest.mark.parametrize('head_type', HEADS)
@pytest.mark.parametrize('loss', ['DR', 'CE'])
def test_auto_keeps_the_eager_path_on_the_cpu(head_type, loss):
    auto, eager = build(head_type, loss, 'auto'), build(head_type, loss,
                                                        False)
    feats, samples = batch()
    assert not auto.classifier.uses_fused(feats)
    if loss == 'DR':
        labels = torch.tensor([s.gt_label.item() for s in samples])
        assert not auto.loss_module._uses_fused(feats, labels, None, None,
                                                'mean', None)
    auto_loss, auto_grad, auto_params = step(auto, feats, samples)
    eager_loss, eager_grad, eager_params = step(eager, feats, samples)
    assert torch.equal(auto_loss, eager_loss)
    assert torch.equal(auto_grad, eager_grad)
    for name, grad in eager_params.items():
        assert torch.equal(auto_params[name], grad), name


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
def test_dot_regression_loss_reductions(reduction):
    """Without the head's avg_factor: 'mean' and 'sum' fused, 'none' (per
    sample) eager."""
    fused = MODELS.build(dict(type='DotRegressionLoss', fused=True,
                              reduction=reduction, loss_weight=3.0))
    eager = MODELS.build(dict(type='DotRegressionLoss', fused=False,
                              reduction=reduction, loss_weight=3.0))
    cosines = torch.tanh(torch.randn(BATCH, NUM_CLASSES))
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 0])
    assert fused._uses_fused(cosines, labels, None, None, reduction,
                             None) == (reduction != 'none')
    results = []
    for loss in (fused, eager):
        c = cosines.clone().requires_grad_()
        value = loss(c, labels)
        value.sum().backward()
        results.append((value.detach(), c.grad))
    torch.testing.assert_close(results[0], results[1])


def test_fused_option_is_checked():
    with pytest.raises(ValueError, match='fused must be'):
        build('ETFHead', 'CE', 'yes')
    with pytest.raises(ValueError, match='fused must be'):
        MODELS.build(dict(type='DotRegressionLoss', fused=1))
