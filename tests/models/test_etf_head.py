import pytest
import torch
from mmpretrain.registry import MODELS

import etf_plugin  # noqa: F401
from helpers import data_samples
from etf_plugin.models import DotRegressionLoss, ETFHead


def test_built_by_type_name_like_linear_cls_head():
    head = MODELS.build(
        dict(type='ETFHead', num_classes=10, in_channels=64, topk=(1, 5),
             cal_acc=True))
    assert isinstance(head.loss_module, DotRegressionLoss)
    feats = (torch.randn(8, 64), )
    labels = torch.arange(8)
    losses = head.loss(feats, data_samples(labels))
    assert set(losses) == {'loss', 'accuracy_top-1', 'accuracy_top-5'}
    assert losses['loss'].ndim == 0 and losses['loss'] > 0
    preds = head.predict(feats)
    assert len(preds) == 8
    assert preds[0].pred_score.shape == (10, )
    assert torch.isclose(preds[0].pred_score.sum(), torch.tensor(1.0))
    logits = head(feats)
    assert torch.equal(preds[3].pred_label, logits[3].argmax().reshape(1))


def test_etf_is_a_fixed_buffer_saved_in_state_dict():
    head = ETFHead(num_classes=10, in_channels=64)
    names = [n for n, _ in head.named_parameters()]
    assert all('etf' not in n for n in names)
    assert 'classifier.etf_vectors' in head.state_dict()
    head.init_weights()  # the Normal init must not touch the buffer
    before = head.etf_vectors.clone()
    optim = torch.optim.SGD(head.parameters(), lr=1.0, weight_decay=0.1)
    for _ in range(3):
        loss = head.loss((torch.randn(16, 64), ),
                         data_samples(torch.arange(16) % 10))['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert torch.equal(head.etf_vectors, before)
    # same seed -> same ETF, in another instance
    assert torch.equal(ETFHead(10, 64).etf_vectors, before)
    assert not torch.equal(ETFHead(10, 64, seed=1).etf_vectors, before)


def test_scores_are_scaled_cosines_and_dr_sees_cosines():
    head = ETFHead(num_classes=4, in_channels=8, logit_scale=5.0,
                   with_bn=False)
    x = torch.randn(6, 8)
    cos = torch.nn.functional.normalize(x, dim=1) @ head.etf_vectors.T
    assert torch.allclose(head((x, )), 5.0 * cos, atol=1e-6)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    expected = 0.5 * ((cos[torch.arange(6), labels] - 1)**2).mean()
    loss = head.loss((x, ), data_samples(labels))['loss']
    assert torch.isclose(loss, expected, atol=1e-6)


def test_cross_entropy_sees_scaled_logits():
    head = ETFHead(num_classes=4, in_channels=8, logit_scale=5.0,
                   loss=dict(type='CrossEntropyLoss'))
    x = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    expected = torch.nn.functional.cross_entropy(head((x, )), labels)
    assert torch.isclose(head.loss((x, ), data_samples(labels))['loss'],
                         expected, atol=1e-6)


def test_soft_targets_from_mixup():
    head = ETFHead(num_classes=3, in_channels=4)
    soft = torch.tensor([[0.3, 0.7, 0.0], [0.0, 0.0, 1.0]])
    loss = head.loss((torch.randn(2, 4), ), data_samples([1, 2], soft=soft))
    assert torch.isfinite(loss['loss'])
    # ClsHead's own check, as for LinearClsHead
    with pytest.raises(AssertionError, match='cal_acc'):
        ETFHead(3, 4, cal_acc=True).loss((torch.randn(2, 4), ),
                                         data_samples([1, 2], soft=soft))


def test_minimal_dimension_and_projection():
    head = ETFHead(num_classes=10, in_channels=9)
    assert head.etf_vectors.shape == (10, 9)
    with pytest.raises(ValueError, match='proj_channels=999'):
        ETFHead(num_classes=1000, in_channels=512)
    proj = ETFHead(num_classes=1000, in_channels=512, proj_channels=1024)
    assert proj.etf_vectors.shape == (1000, 1024)
    out = proj.loss((torch.randn(4, 512), ), data_samples([0, 1, 998, 999]))
    out['loss'].backward()
    assert proj.classifier.proj.weight.grad is not None


def test_bad_input():
    with pytest.raises(ValueError, match='num_classes >= 2'):
        ETFHead(num_classes=1, in_channels=8)
    head = ETFHead(num_classes=4, in_channels=8)
    with pytest.raises(ValueError, match='Label 4 is outside'):
        head.loss((torch.randn(2, 8), ), data_samples([0, 4]))
    # Checked on the host for the first batch only; a bad label later stops
    # the loss's indexing kernel (a device-side assertion on a GPU).
    head.loss((torch.randn(2, 8), ), data_samples([0, 1]))
    with pytest.raises((IndexError, RuntimeError)):
        head.loss((torch.randn(2, 8), ), data_samples([0, 4]))
    # Non-finite features give a non-finite loss, not a host-side check:
    # the AMP loss scaler skips such a step, NonFiniteLossHook stops an
    # fp32 run (tests/engine/test_non_finite_loss_hook.py).
    loss = head.loss((torch.full((2, 8), float('nan')), ),
                     data_samples([0, 1]))['loss']
    assert not torch.isfinite(loss)


def test_zero_features_give_no_nan():
    for kwargs in (dict(), dict(normalize=False),
                   dict(normalize=False, loss=dict(
                       type='DotRegressionLoss', norm_reg=0.01))):
        head = ETFHead(num_classes=4, in_channels=8, **kwargs)
        x = torch.zeros(3, 8, requires_grad=True)
        loss = head.loss((x, ), data_samples([0, 1, 2]))['loss']
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        assert torch.isfinite(head((x, ))).all()


def test_checkpoint_with_other_etf_shape_is_refused():
    small = ETFHead(num_classes=10, in_channels=64)
    large = ETFHead(num_classes=20, in_channels=64)
    with pytest.raises(ValueError, match=r'\(20, 64\).*\(10, 64\)'):
        small.load_state_dict(large.state_dict(), strict=False)
    # a checkpoint's ETF (other seed, same shape) replaces the fresh one
    other = ETFHead(num_classes=10, in_channels=64, seed=5)
    small.load_state_dict(other.state_dict())
    assert torch.equal(small.etf_vectors, other.etf_vectors)


def test_unnormalised_variant_passes_feature_norms():
    head = ETFHead(num_classes=4, in_channels=8, normalize=False,
                   with_bn=False,
                   loss=dict(type='DotRegressionLoss', norm_reg=0.01))
    x = 3 * torch.randn(5, 8)
    labels = torch.tensor([0, 1, 2, 3, 0])
    n = x.norm(dim=1)
    z = (x @ head.etf_vectors.T)[torch.arange(5), labels]
    expected = (0.5 * (z - n)**2 / n).mean() + 0.01 * n.mean()
    assert torch.isclose(head.loss((x, ), data_samples(labels))['loss'],
                         expected, atol=1e-5)


def test_checkpoint_of_the_old_layout_loads():
    # Before ETFClassifier, the head held etf_vectors, bn.* and proj.*.
    head = ETFHead(num_classes=10, in_channels=64, proj_channels=32, seed=3)
    with torch.no_grad():
        head.classifier.bn.weight.uniform_()
    old = {key.replace('classifier.', ''): value
           for key, value in head.state_dict().items()}
    assert 'etf_vectors' in old and 'bn.weight' in old
    fresh = ETFHead(num_classes=10, in_channels=64, proj_channels=32)
    missing, unexpected = fresh.load_state_dict(old, strict=False)
    assert not missing and not unexpected
    for key, value in head.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_default_head_works_on_relu_features():
    # A ReLU network's pooled features are non-negative; such a vector
    # reaches a cosine of only ~0.6-0.7 with a random ETF vertex. The
    # default head (BN before the normalisation) must get close to 1.
    torch.manual_seed(0)
    num_classes, dim = 10, 32
    labels = torch.arange(200) % num_classes
    inputs = torch.nn.functional.one_hot(labels, 16).float() + \
        0.3 * torch.randn(200, 16)

    def own_class_cosine(head):
        torch.manual_seed(1)
        body = torch.nn.Sequential(
            torch.nn.Linear(16, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, dim), torch.nn.ReLU())
        params = list(body.parameters()) + list(head.parameters())
        optim = torch.optim.Adam(params, lr=1e-2)
        for _ in range(600):
            loss = head.loss((body(inputs), ), data_samples(labels))['loss']
            optim.zero_grad()
            loss.backward()
            optim.step()
        head.eval()
        with torch.no_grad():
            cos = head.classifier(body(inputs))
        return cos[torch.arange(200), labels].mean().item()

    assert own_class_cosine(ETFHead(num_classes, dim)) >= 0.9
    assert own_class_cosine(ETFHead(num_classes, dim, with_bn=False)) < 0.8


class MyCosineLoss(torch.nn.Module):
    takes_cosines = True

    def forward(self, cls_score, label, avg_factor=None, **kwargs):
        self.seen = cls_score
        return (1 - cls_score.gather(1, label[:, None])).mean()


def test_a_loss_declares_that_it_takes_cosines():
    head = ETFHead(num_classes=4, in_channels=8, logit_scale=5.0,
                   loss=MyCosineLoss())
    x = torch.randn(6, 8)
    head.loss((x, ), data_samples(torch.arange(6) % 4))
    assert head.loss_module.seen.abs().max() <= 1 + 1e-6
    assert torch.allclose(5.0 * head.loss_module.seen, head((x, )),
                          atol=1e-5)


def test_cosines_and_loss_in_float32_under_autocast():
    head = ETFHead(num_classes=4, in_channels=8)
    x = torch.randn(6, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = head.loss((x.bfloat16(), ), data_samples(torch.arange(6) % 4))
        scores = head((x.bfloat16(), ))
    assert loss['loss'].dtype == torch.float32
    assert scores.dtype == torch.float32
    # bfloat16 inputs, float32 maths: the scores match float32 inputs to
    # the inputs' rounding, not to bfloat16's 3 significant digits on 1.
    assert torch.allclose(scores, head((x.bfloat16().float(), )), atol=1e-5)


def test_unpooled_features_name_the_expected_shape():
    head = ETFHead(num_classes=10, in_channels=768)
    with pytest.raises(ValueError, match=r"\(N, in_channels=768\).*"
                       r"\(2, 197, 768\).*cls_token"):
        head.loss((torch.randn(2, 197, 768), ), data_samples([0, 1]))


def test_bad_logit_scale():
    for scale in (0, 0.0, -1, -1.0, float('nan'), float('inf'), '10'):
        with pytest.raises(ValueError, match='logit_scale'):
            ETFHead(num_classes=4, in_channels=8, logit_scale=scale)
