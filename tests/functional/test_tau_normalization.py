import pytest
import torch
import torch.nn.functional as F

from etf_plugin.functional import tau_normalize


def weights():
    g = torch.Generator().manual_seed(0)
    # rows of very different norms, as cross-entropy on long-tailed data gives
    return torch.randn(
        5, 8, generator=g, dtype=torch.float64) * torch.tensor(
            [4.0, 2.0, 1.0, 0.5, 0.1], dtype=torch.float64)[:, None]


@pytest.mark.parametrize('tau', [0.0, 0.3, 0.5, 1.0, 1.5])
def test_row_norms_are_norm_to_one_minus_tau(tau):
    w = weights()
    out = tau_normalize(w, tau)
    norms = w.norm(dim=1)
    assert torch.allclose(out.norm(dim=1), norms**(1 - tau))
    # directions unchanged
    assert torch.allclose(
        F.cosine_similarity(out, w, dim=1), torch.ones(5, dtype=w.dtype))


def test_tau_zero_is_identity_and_one_is_unit_rows():
    w = weights()
    assert torch.equal(tau_normalize(w, 0.0), w)
    assert torch.allclose(
        tau_normalize(w, 1.0).norm(dim=1), torch.ones(5, dtype=w.dtype))
    assert not torch.equal(tau_normalize(w, 0.5), w)  # input not modified
    assert torch.equal(w, weights())


def test_bad_input():
    w = weights()
    w[3] = 0
    with pytest.raises(ValueError, match=r'classes \[3\]'):
        tau_normalize(w, 0.5)
    assert torch.equal(tau_normalize(w, 0.0), w)  # tau 0 leaves zero rows
    with pytest.raises(ValueError, match='num_classes, dim'):
        tau_normalize(torch.ones(5), 1.0)
