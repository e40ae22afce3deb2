import math

import numpy as np
import pytest
import torch

from etf_plugin.functional import adjust_logits, log_prior


def test_log_prior_is_log_of_normalised_counts():
    prior = log_prior([300, 100, 100])
    assert prior.dtype == torch.float64
    expected = [math.log(0.6), math.log(0.2), math.log(0.2)]
    assert prior.tolist() == pytest.approx(expected, abs=1e-15)
    # same from numpy and torch inputs, and with the length check
    assert torch.equal(log_prior(np.array([300, 100, 100])), prior)
    assert torch.equal(log_prior(torch.tensor([300, 100, 100]), 3), prior)


@pytest.mark.parametrize('counts, bad', [([5, 0, 3], 'class 1 has 0'),
                                         ([5, 2, -1], 'class 2 has -1')])
def test_non_positive_count_names_the_class(counts, bad):
    with pytest.raises(ValueError, match=bad):
        log_prior(counts)


def test_wrong_length_is_an_error():
    with pytest.raises(ValueError, match='3 entries but the model has 4'):
        log_prior([5, 2, 1], num_classes=4)
    with pytest.raises(ValueError, match='non-empty'):
        log_prior([])
    with pytest.raises(
            ValueError, match='4 classes but the class prior has '
            '3'):
        adjust_logits(torch.zeros(2, 4), log_prior([5, 2, 1]), 1.0)


def test_adjust_logits_hand_computed():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    prior = log_prior([6, 3, 1])  # pi = 0.6, 0.3, 0.1
    out = adjust_logits(logits, prior, 0.5)
    expected = logits.double() + 0.5 * torch.tensor(
        [math.log(0.6), math.log(0.3),
         math.log(0.1)], dtype=torch.float64)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), expected, atol=1e-6)
    # tau = 0 returns the logits bit for bit; -tau undoes +tau
    assert torch.equal(adjust_logits(logits, prior, 0.0), logits)
    assert torch.allclose(
        adjust_logits(adjust_logits(logits, prior, 2.0), prior, -2.0),
        logits,
        atol=1e-6)
