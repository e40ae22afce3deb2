"""The RoI classifier's training step reads nothing back to the host: the
predictor + loss compile with ``torch.compile(fullgraph=True)`` (dynamo
refuses ``.item()``, ``bool(tensor)`` and data-dependent shapes such as
boolean-mask indexing) and match eager."""
import copy

import pytest
import torch

import etf_plugin.det  # noqa: F401  (registers the mmdet components)
from etf_plugin.det import ETFObjectnessLoss, ETFObjectnessPredictor


def rois(num_rois=16, num_classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(num_rois, 12, generator=generator)
    labels = torch.randint(0, num_classes + 1, (num_rois, ),
                           generator=generator)
    labels[:2] = num_classes  # background RoIs
    labels[2] = 0
    label_weights = torch.ones(num_rois)
    label_weights[3] = 0.0
    return features, labels, label_weights


def forward_and_loss(predictor, loss, features, labels, label_weights,
                     reduction):
    cls_score = predictor(features)
    if reduction == 'none':
        total = loss(cls_score, labels, label_weights,
                     reduction_override='none')['loss_cls'].sum()
    else:
        out = loss(cls_score, labels, label_weights, avg_factor=15.0)
        total = out['loss_cls_objectness'] + out['loss_cls_classes']
    return total, loss.get_activation(cls_score)


@pytest.mark.parametrize('class_balanced', [False, True])
@pytest.mark.parametrize('reduction', ['mean', 'none'])
def test_training_step_compiles_fullgraph_and_matches_eager(
        class_balanced, reduction):
    torch.manual_seed(0)
    predictor = ETFObjectnessPredictor(in_features=12, out_features=5)
    loss = ETFObjectnessLoss(dr_weight=10.0, class_balanced=class_balanced)
    compiled_predictor = copy.deepcopy(predictor)
    inputs = rois()

    expected = forward_and_loss(predictor, loss, *inputs, reduction)
    step = torch.compile(forward_and_loss, fullgraph=True,
                         backend='aot_eager')
    got = step(compiled_predictor, loss, *inputs, reduction)
    expected[0].backward()
    got[0].backward()  # the backward graph AOTAutograd compiled

    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    for (name, a), b in zip(compiled_predictor.named_parameters(),
                            predictor.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    # the BatchNorm's running statistics moved the same way
    torch.testing.assert_close(compiled_predictor.classifier.bn.running_mean,
                               predictor.classifier.bn.running_mean)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_cuda_training_step_never_waits_for_the_device():
    # torch raises on any device-to-host synchronisation in 'error' mode
    torch.manual_seed(0)
    predictor = ETFObjectnessPredictor(in_features=12, out_features=5).cuda()
    loss = ETFObjectnessLoss(dr_weight=10.0, class_balanced=True)
    inputs = [tensor.cuda() for tensor in rois(num_rois=512)]
    for reduction in ('mean', 'none'):
        # the first call allocates (and may synchronise) outside the check
        forward_and_loss(predictor, loss, *inputs, reduction)[0].backward()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            total, _ = forward_and_loss(predictor, loss, *inputs, reduction)
            total.backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert torch.isfinite(total)
