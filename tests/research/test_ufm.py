"""The UFM simulator: minority collapse of a learnable CE classifier past
``lam* = sqrt(n_B)/N``, none with a fixed ETF, and agreement with the convex
program.

Setting throughout: K = 10, 3 majority classes of 500 samples and 7 minority
classes of 100 (R = 5), d = 16, no bias, ``lambda_W = lambda_H = lam / 2``.
There the collapsed minority means stay non-zero up to at least 1.7
``lam*``, so their cosine is well defined at 1.4 ``lam*``.
"""
import math
import sys

import pytest
import torch

from research.ufm import (class_mean_logits, class_means, first_crossing,
                          minority_collapse_threshold, solve_ufm_convex,
                          train_ufm, ufm_collapse_metrics)

N_MAJOR, N_MINOR, K_MAJOR, K_MINOR = 500, 100, 3, 7
COUNTS = [N_MAJOR] * K_MAJOR + [N_MINOR] * K_MINOR
DIM = 16
ETF_COS = -1 / (len(COUNTS) - 1)
LAM_STAR = minority_collapse_threshold(N_MAJOR, N_MINOR, K_MAJOR, K_MINOR)

# The problems are tiny: on a busy machine extra BLAS threads only spin.
pytestmark = pytest.mark.usefixtures('one_thread')

_runs = {}


def run(ratio, mode='learnable_ce', lambda_b=None):
    """Train once per setting and share the result between tests."""
    key = (ratio, mode, lambda_b)
    if key not in _runs:
        lam = ratio * LAM_STAR
        result = train_ufm(
            COUNTS,
            DIM,
            lam / 2,
            lam / 2,
            mode=mode,
            lambda_b=lambda_b,
            max_iter=2000)  # converged runs need < 400; fail fast if not
        assert result['converged'], (key, result['grad_norm'])
        _runs[key] = (result, ufm_collapse_metrics(result, COUNTS))
    return _runs[key]


def test_threshold_matches_the_papers_examples():
    # 5 (or 3) majority classes of 500, the rest of the 10 minority with 100.
    assert minority_collapse_threshold(500, 100, 5, 5) == pytest.approx(
        0.003333, abs=5e-7)
    assert minority_collapse_threshold(500, 100, 3, 7) == pytest.approx(
        0.004545, abs=5e-7)
    assert minority_collapse_threshold(500, 100, 3, 7) == math.sqrt(100) / (
        3 * 500 + 7 * 100)
    with pytest.raises(ValueError, match='swap'):
        minority_collapse_threshold(100, 500, 5, 5)
    with pytest.raises(ValueError, match='k_minor >= 2'):
        minority_collapse_threshold(500, 100, 9, 1)


def test_learnable_ce_collapses_minority_only_past_threshold():
    _, below = run(0.6)
    _, above = run(1.4)
    assert below['mc_means_cos_few'] < 0.9
    assert above['mc_means_cos_few'] > 0.99
    # Fang et al.'s classifier-side collapse comes with it.
    assert below['mc_w_cos_few'] < 0.9
    assert above['mc_w_cos_few'] > 0.99
    # The majority classes do not collapse.
    assert above['mc_means_cos_many'] < 0


@pytest.mark.parametrize('mode', ['etf_ce', 'etf_dr'])
@pytest.mark.parametrize('ratio', [0.6, 1.4])
def test_fixed_etf_keeps_minority_at_simplex_angle(mode, ratio):
    result, metrics = run(ratio, mode)
    assert abs(metrics['mc_means_cos_few'] - ETF_COS) < 0.02
    assert abs(metrics['mc_means_cos_many'] - ETF_COS) < 0.02
    assert metrics['wm_cos'] > 0.99  # every class mean on its ETF vector
    # The classifier did not move.
    assert abs(metrics['mc_w_cos_few'] - ETF_COS) < 1e-6


def test_simulated_threshold_close_to_predicted():
    ratios = [0.9, 0.95, 0.98, 1.02, 1.05]
    cosines = [run(r)[1]['mc_means_cos_few'] for r in ratios]
    crossing = first_crossing(ratios, cosines, 0.99)
    assert crossing is not None
    assert abs(crossing - 1) < 0.05


def test_features_collapse_within_classes():
    # NC1 is measured, not built in: every sample starts at its own random
    # point (std 0.1) and must reach its class mean.
    result, metrics = run(0.6)
    means = class_means(result['features'], result['labels'], len(COUNTS))
    spread = (result['features'] - means[result['labels']]).norm(dim=1)
    assert spread.max() < 1e-6 * means.norm(dim=1).min()
    assert metrics['nc1'] < 1e-8


@pytest.mark.parametrize('ratio', [0.6, 1.4])
def test_gradient_descent_matches_convex_program(ratio):
    pytest.importorskip('cvxpy')
    result, _ = run(ratio)
    lam = ratio * LAM_STAR
    convex = solve_ufm_convex(COUNTS, lam)
    simulated = class_mean_logits(result['features'], result['labels'],
                                  result['classifier'])
    reference = convex['mean_logits']
    # Measured: at most 2e-6 over 0.5 ... 1.5 lam* (L-BFGS stopped at
    # gradient norm 1e-8, SCS at eps 1e-10); 1e-4 leaves a 50x margin, and a
    # 5 % change of lam moves the solution by over 3 %, 300x the tolerance.
    rel_diff = (simulated - reference).norm() / reference.norm()
    assert rel_diff < 1e-4
    shifted = solve_ufm_convex(COUNTS, 1.05 * lam)['mean_logits']
    assert (shifted - reference).norm() / reference.norm() > 1e-2
    # The UFM objective can only match the convex optimum from above.
    assert result['objective'] == pytest.approx(convex['objective'], abs=1e-7)


def test_gradient_descent_matches_convex_program_with_bias():
    pytest.importorskip('cvxpy')
    result, _ = run(0.9, lambda_b=0.01)
    convex = solve_ufm_convex(COUNTS, 0.9 * LAM_STAR, lambda_b=0.01)
    simulated = class_mean_logits(result['features'], result['labels'],
                                  result['classifier'])
    reference = convex['mean_logits']
    assert (simulated - reference).norm() / reference.norm() < 1e-4
    assert torch.allclose(result['bias'], convex['bias'], atol=1e-4)


def test_only_the_product_of_the_weight_decays_matters():
    # lam = 2 sqrt(lambda_W lambda_H) fixes the mean logits; the split only
    # trades feature norm for classifier norm.
    result, _ = run(0.6)
    lam = 0.6 * LAM_STAR
    split = train_ufm(COUNTS, DIM, lam, lam / 4, max_iter=2000)
    assert split['converged']
    reference = class_mean_logits(result['features'], result['labels'],
                                  result['classifier'])
    other = class_mean_logits(split['features'], split['labels'],
                              split['classifier'])
    assert (other - reference).norm() / reference.norm() < 1e-5
    assert split['classifier'].norm() < 0.9 * result['classifier'].norm()


def test_solve_ufm_convex_without_cvxpy(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cvxpy', None)
    with pytest.raises(ImportError, match='pip install cvxpy'):
        solve_ufm_convex(COUNTS, LAM_STAR)


def test_train_ufm_rejects_bad_settings():
    with pytest.raises(ValueError, match='mode'):
        train_ufm(COUNTS, DIM, 1e-3, 1e-3, mode='learnable_dr')
    with pytest.raises(ValueError, match='lambda_b=None'):
        train_ufm(COUNTS, DIM, 1e-3, 1e-3, mode='etf_ce', lambda_b=0.01)
    with pytest.raises(ValueError, match='feat_dim'):
        train_ufm(COUNTS, 8, 1e-3, 1e-3)
    with pytest.raises(ValueError, match='at least 2 classes'):
        train_ufm([10], DIM, 1e-3, 1e-3)


def test_class_mean_logits():
    features = torch.randn(7, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    classifier = torch.randn(3, 4, dtype=torch.float64)
    expected = torch.stack(
        [features[labels == k].mean(0) @ classifier.T for k in range(3)])
    assert torch.allclose(
        class_mean_logits(features, labels, classifier), expected)
    with pytest.raises(ValueError, match='at least one sample'):
        class_means(features, labels, 4)


def test_first_crossing():
    assert first_crossing([0, 1, 2], [0, 0.5, 1], 0.75) == pytest.approx(1.5)
    assert first_crossing([0, 1, 2], [0.8, 0.5, 1], 0.75) == 0
    assert first_crossing([0, 1, 2], [0, 0.5, 0.6], 0.75) is None


def test_shared_layer_removes_the_fixed_etf_immunity():
    """With h_i = A u_i the fixed ETF + CE problem is Hong & Ling's convex
    program at lam / sqrt(K/(K-1)): its minority means leave the simplex
    angle below the threshold and merge above shared_etf_threshold."""
    from research.ufm import shared_etf_threshold
    shared = shared_etf_threshold(N_MAJOR, N_MINOR, K_MAJOR, K_MINOR)
    k = len(COUNTS)
    assert shared == pytest.approx(LAM_STAR * math.sqrt(k / (k - 1)))
    for ratio, collapsed in ((0.9, False), (1.15, True)):
        lam = ratio * shared
        result = train_ufm(COUNTS, DIM, lam / 2, lam / 2,
                           mode='etf_ce_shared', max_iter=3000)
        assert result['converged']
        cos = ufm_collapse_metrics(result, COUNTS)['mc_means_cos_few']
        assert (cos > 0.999) == collapsed, (ratio, cos)
        assert cos > ETF_COS + 0.05  # not the simplex angle either way
        pytest.importorskip('cvxpy')
        z = solve_ufm_convex(COUNTS, lam / math.sqrt(k / (k - 1)))[
            'mean_logits']
        z = z - z.mean(1, keepdim=True)
        sim = class_mean_logits(result['features'], result['labels'],
                                result['classifier'])
        sim = sim - sim.mean(1, keepdim=True)
        assert ((sim - z).norm() / z.norm()).item() < 1e-5


def test_bisect_threshold():
    from research.ufm import bisect_threshold
    out = bisect_threshold(lambda x: x >= 0.3, 0.0, 1.0, 1e-3)
    assert out['lo'] < 0.3 <= out['hi'] and out['hi'] - out['lo'] <= 1e-3
    assert len(out['steps']) == 2 + 10
    with pytest.raises(ValueError, match='False at lo'):
        bisect_threshold(lambda x: True, 0.0, 1.0, 0.1)


def test_gradient_descent_race_reaches_each_optimum():
    from research.ufm import gradient_descent_race
    counts = [6, 6, 2, 2]
    out = gradient_descent_race(counts, 4, 0.5 / sum(counts), lr=0.5,
                                tol=1e-3, max_steps=5000)
    for mode in ('etf_ce', 'etf_dr'):
        assert out[mode]['steps'] is not None
        assert out[mode]['final_distance'] <= 1e-3
    # DR's optimum: h = w_y / (1 + 2 N lambda_H) = w_y / 2
    assert out['etf_dr']['optimum_norm'] == pytest.approx(0.5, abs=1e-6)
