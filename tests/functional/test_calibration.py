import math

import numpy as np
import pytest
import torch

from etf_plugin.functional import (calibration_bin_sums, calibration_errors,
                                   true_class_nll)


def reference_ece_mce(confidences, correct, num_bins):
    """Guo et al.'s definition, written as a loop over the bins."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, num_bins + 1)
    ece, mce = 0.0, 0.0
    for b in range(num_bins):
        inside = (confidences > edges[b]) & (confidences <= edges[b + 1])
        if b == 0:
            inside |= confidences == 0
        if inside.any():
            gap = abs(correct[inside].mean() - confidences[inside].mean())
            ece += inside.mean() * gap
            mce = max(mce, gap)
    return ece, mce


def test_hand_made_case():
    # 5 bins. (0.8, 1]: 4 samples at 0.9, 3 right: gap 0.15.
    # (0.4, 0.6]: 2 at 0.5, both right: gap 0.5. (0.2, 0.4]: 2 at 0.3, none
    # right: gap 0.3. ECE = (4 * 0.15 + 2 * 0.5 + 2 * 0.3) / 8 = 0.275.
    confidences = [0.9] * 4 + [0.5] * 2 + [0.3] * 2
    correct = [1, 1, 1, 0, 1, 1, 0, 0]
    sums = calibration_bin_sums(confidences, correct, num_bins=5)
    assert sums[0].tolist() == [0, 2, 2, 0, 4]
    errors = calibration_errors(sums)
    assert errors['ece'] == pytest.approx(0.275)
    assert errors['mce'] == pytest.approx(0.5)


def test_bins_are_closed_on_the_right():
    # 0.2 is the upper edge of bin 0 of 5, 0.4 of bin 1; 0 falls in bin 0.
    sums = calibration_bin_sums([0.0, 0.2, 0.4, 0.4000001, 1.0],
                                [0, 0, 0, 0, 0], num_bins=5)
    assert sums[0].tolist() == [2, 1, 1, 0, 1]


def test_perfectly_calibrated_and_sums_add_up():
    # Half right at confidence 0.5, all right at 1: no gap.
    errors = calibration_errors(
        calibration_bin_sums([0.5, 0.5, 1.0], [1, 0, 1]))
    assert errors == dict(ece=0.0, mce=0.0)
    generator = np.random.default_rng(0)
    confidences = generator.random(1000)
    correct = generator.random(1000) < confidences ** 2
    whole = calibration_bin_sums(confidences, correct, 15)
    parts = calibration_bin_sums(confidences[:300], correct[:300], 15) + \
        calibration_bin_sums(torch.tensor(confidences[300:]),
                             torch.tensor(correct[300:]), 15)
    np.testing.assert_allclose(parts, whole)
    ece, mce = reference_ece_mce(confidences, correct, 15)
    errors = calibration_errors(whole)
    assert errors['ece'] == pytest.approx(ece, abs=1e-12)
    assert errors['mce'] == pytest.approx(mce, abs=1e-12)
    assert errors['ece'] > 0.05  # the case is miscalibrated


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match='softmax'):
        calibration_bin_sums([1.5], [1])
    with pytest.raises(ValueError, match='one of each'):
        calibration_bin_sums([0.5, 0.5], [1])
    with pytest.raises(ValueError, match='positive integer'):
        calibration_bin_sums([0.5], [1], num_bins=0)
    assert math.isnan(calibration_errors(np.zeros((3, 15)))['ece'])


def test_true_class_nll():
    nll = true_class_nll([1.0, 0.5, 0.0])
    assert nll[:2].tolist() == pytest.approx([0.0, math.log(2)])
    assert np.isfinite(nll[2]) and nll[2] > 700
