import numpy as np
import pytest

from etf_plugin.functional import (DEFAULT_SHIFT_RATIOS, long_tail_test_prior,
                                   shift_name, shifted_accuracy)

# Hand-made per-class table: training counts 100 / 10 / 1, test accuracies
# 0.9 / 0.6 / 0.3.
COUNTS = [100, 10, 1]
ACCURACY = [0.9, 0.6, 0.3]


def test_hand_made_forward_backward_uniform():
    # Forward 4: priors 1, 4^-1/2, 4^-1 = 1, 1/2, 1/4 (over 7/4).
    forward = long_tail_test_prior(COUNTS, 4)
    np.testing.assert_allclose(forward, np.array([1, 0.5, 0.25]) / 1.75)
    assert shifted_accuracy(ACCURACY, forward) == pytest.approx(
        (0.9 + 0.3 + 0.075) / 1.75)
    # Backward 4: 1, 2, 4 (over 7): the tail class weighs most.
    backward = long_tail_test_prior(COUNTS, 1 / 4)
    np.testing.assert_allclose(backward, np.array([1, 2, 4]) / 7)
    assert shifted_accuracy(ACCURACY, backward) == pytest.approx(3.3 / 7)
    # Uniform: the mean of the per-class accuracies.
    assert shifted_accuracy(ACCURACY, long_tail_test_prior(COUNTS, 1)) == \
        pytest.approx(0.6)


def test_order_follows_the_training_counts_not_the_index():
    prior = long_tail_test_prior([1, 100, 10], 4)
    np.testing.assert_allclose(prior, np.array([0.25, 1, 0.5]) / 1.75)


def test_tied_counts_share_their_prior():
    # Ranks 0 and 1 tie: both get (1 + 1/2) / 2.
    prior = long_tail_test_prior([10, 10, 1], 4)
    np.testing.assert_allclose(prior, np.array([0.75, 0.75, 0.25]) / 1.75)
    swapped = long_tail_test_prior([10, 1, 10], 4)
    np.testing.assert_allclose(swapped, prior[[0, 2, 1]])


def test_ratio_is_the_prior_ratio():
    counts = np.arange(100, 0, -1)
    for ratio in DEFAULT_SHIFT_RATIOS:
        prior = long_tail_test_prior(counts, ratio)
        assert prior.sum() == pytest.approx(1)
        assert prior[0] / prior[-1] == pytest.approx(ratio)


def test_absent_classes_are_left_out():
    prior = long_tail_test_prior(COUNTS, 4)
    value = shifted_accuracy([0.9, np.nan, 0.3], prior)
    assert value == pytest.approx((0.9 * 1 + 0.3 * 0.25) / 1.25)
    assert np.isnan(shifted_accuracy([np.nan] * 3, prior))
    with pytest.raises(ValueError, match='one per class'):
        shifted_accuracy([0.5, 0.5], prior)


def test_names():
    assert [shift_name(r) for r in DEFAULT_SHIFT_RATIOS] == [
        'forward_50', 'forward_25', 'forward_10', 'forward_5', 'forward_2',
        'uniform', 'backward_2', 'backward_5', 'backward_10', 'backward_25',
        'backward_50'
    ]
    assert shift_name(2.5) == 'forward_2.5'
    with pytest.raises(ValueError, match='1/50 backward'):
        long_tail_test_prior(COUNTS, 0)
