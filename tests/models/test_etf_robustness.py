"""Faults that used to give silently wrong numbers (issue 13): gradients
through a zero feature, a loaded ETF that is not a simplex ETF, bad
arguments that were accepted or blamed on something else."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import etf_plugin.models.utils.normalized_classifier as classifier_module
from helpers import data_samples
from etf_plugin.datasets import LongTailDataset
from etf_plugin.functional.etf import (ETF_GRAM_TOLERANCE, NORM_EPS,
                                       safe_normalize, simplex_etf)
from etf_plugin.models import ETFHead


def spectral_norm(matrix):
    return torch.linalg.matrix_norm(matrix, ord=2).item()


@pytest.mark.parametrize('norm', [0.0, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1.0,
                                  100.0])
def test_safe_normalize_jacobian_is_bounded(norm):
    """|J| <= 1/eps for every input, with equality at zero: the bound the
    docstring states is the real one."""
    torch.manual_seed(0)
    direction = F.normalize(torch.randn(16, dtype=torch.float64), dim=0)
    x = norm * direction
    jac = torch.autograd.functional.jacobian(
        lambda v: safe_normalize(v[None], NORM_EPS)[0], x)
    bound = 1 / NORM_EPS
    assert spectral_norm(jac) <= bound * (1 + 1e-9)
    if norm == 0.0:
        assert spectral_norm(jac) == pytest.approx(bound)
    # the output is a unit vector up to eps^2 / (2 norm^2)
    if norm >= 1:
        y = safe_normalize(x[None])[0]
        assert abs(y.norm().item() - 1) <= NORM_EPS**2 / (2 * norm**2) + 1e-12


@pytest.mark.parametrize('with_bn', [False, True])
def test_zero_features_give_bounded_gradients(with_bn, monkeypatch):
    """All-zero features (a dead backbone): the DR loss is finite and the
    gradient reaching the features is at most 1/NORM_EPS (times BN's
    1/sqrt(eps) amplification of a zero-variance batch) the gradient at the
    normalised features. With F.normalize(eps=1e-8) it was 1e8 times that
    (1e8 to 1.4e10 measured)."""
    upstream = {}
    real = classifier_module.safe_normalize

    def recording(x, *args, **kwargs):
        y = real(x, *args, **kwargs)
        y.retain_grad()
        upstream['y'] = y
        return y

    monkeypatch.setattr(classifier_module, 'safe_normalize', recording)
    head = ETFHead(num_classes=10, in_channels=64, with_bn=with_bn)
    head.train()
    x = torch.zeros(8, 64, requires_grad=True)
    loss = head.loss((x, ), data_samples([0, 1, 2, 3, 4, 5, 6, 7]))['loss']
    loss.backward()
    assert torch.isfinite(loss)
    grad_y = upstream['y'].grad
    assert grad_y.norm() > 0  # the loss does pull on the features
    bound = grad_y.norm().item() / NORM_EPS
    if with_bn:
        bn = head.classifier.bn
        bound *= bn.weight.abs().max().item() / bn.eps**0.5
    assert x.grad.norm().item() <= bound * (1 + 1e-5)
    assert x.grad.norm().item() < 1e6  # was 1e8 to 1.4e10
    # the bound is not loose: without BN it is reached
    if not with_bn:
        assert x.grad.norm().item() == pytest.approx(bound, rel=1e-5)
    # the old normalisation, for scale: 1e5 times larger
    assert torch.autograd.functional.jacobian(
        lambda v: F.normalize(v[None], eps=1e-8)[0],
        torch.zeros(64)).norm(p=2).item() > 1e7


def corrupted_etfs():
    etf = simplex_etf(10, 64)
    flipped = etf.clone()
    flipped[3, 5] = -flipped[3, 5] + 0.1  # one entry off
    return {
        'zeros': torch.zeros_like(etf),
        'random': torch.randn(etf.shape, generator=torch.Generator()
                              .manual_seed(0)),
        'nan': torch.full_like(etf, float('nan')),
        'inf': etf.masked_fill(torch.eye(10, 64, dtype=torch.bool),
                               float('inf')),
        'scaled': 2 * etf,  # right angles, wrong lengths
        'one entry': flipped,
    }


@pytest.mark.parametrize('kind', list(corrupted_etfs()))
def test_loaded_etf_must_be_a_simplex_etf(kind):
    head = ETFHead(num_classes=10, in_channels=64)
    state = head.state_dict()
    state['classifier.etf_vectors'] = corrupted_etfs()[kind]
    with pytest.raises(ValueError, match=r'classifier\.etf_vectors'):
        head.load_state_dict(state)
    # nothing was loaded
    assert torch.equal(head.etf_vectors, simplex_etf(10, 64))


def test_loaded_etf_tolerance_is_stated_and_applied():
    head = ETFHead(num_classes=10, in_channels=64)
    etf = simplex_etf(10, 64, dtype=torch.float64)
    # within tolerance (float32 round-off of another seed's ETF): loads
    state = head.state_dict()
    state['classifier.etf_vectors'] = simplex_etf(10, 64, seed=3)
    head.load_state_dict(state)
    # just outside: refused, with the tolerance in the message
    state['classifier.etf_vectors'] = (etf * (1 + 2 * ETF_GRAM_TOLERANCE)
                                       ).float()
    with pytest.raises(ValueError, match=f'tolerance {ETF_GRAM_TOLERANCE:g}'):
        head.load_state_dict(state)


def test_loaded_etf_of_other_shape_is_refused():
    head = ETFHead(num_classes=10, in_channels=64)
    for shape in ((10, 32), (9, 64), (640, )):
        state = head.state_dict()
        state['classifier.etf_vectors'] = torch.zeros(shape)
        with pytest.raises(ValueError, match='has shape'):
            head.load_state_dict(state, strict=False)


@pytest.fixture(scope='module')
def labelled():
    from mmpretrain.datasets import BaseDataset

    class Labels(BaseDataset):

        def load_data_list(self):
            return [dict(img_path=f'{i}.png', gt_label=i % 10)
                    for i in range(1000)]

    return Labels(
        ann_file='', metainfo=dict(classes=[f'c{i}' for i in range(10)]))


def test_imbalance_ratio_as_text_names_the_fix(labelled):
    with pytest.raises(TypeError, match=r"imbalance_ratio=0\.01, not '0\.01'"):
        LongTailDataset(labelled, imbalance_ratio='0.01')


@pytest.mark.parametrize('n_max', [-3, 0, 2.5])
def test_bad_n_max_is_named_as_n_max(labelled, n_max):
    with pytest.raises(ValueError) as info:
        LongTailDataset(labelled, n_max=n_max)
    message = str(info.value)
    assert message.startswith('n_max must be a positive integer')
    assert 'empty class' not in message


@pytest.mark.parametrize('bad', [2.7, -1, '5'])
def test_counts_must_be_integers(labelled, bad):
    with pytest.raises(ValueError, match='counts must be non-negative '
                       'integers'):
        LongTailDataset(labelled, counts=[10, 5, bad])
    # not truncated to 2 any more: integers (NumPy's too) pass unchanged
    dataset = LongTailDataset(
        labelled, counts=[10, 5, np.int64(2)], allow_empty=True)
    assert list(dataset.metainfo['class_counts'][:3]) == [10, 5, 2]
