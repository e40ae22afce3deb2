"""The per-group class-mean norm ratios of NCAccumulator.compute."""
import pytest
import torch

from etf_plugin.functional import neural_collapse_metrics, simplex_etf


def test_norm_ratios_of_shrunk_minority_means():
    etf = simplex_etf(4, 8, seed=0).double()
    scale = torch.tensor([2.0, 2.0, 1.0, 1.0], dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(5)
    features = (etf * scale[:, None])[labels]
    metrics = neural_collapse_metrics(features, labels, 4,
                                      class_counts=[50, 50, 5, 5],
                                      many_thr=20, few_thr=20)
    # centred means are the scaled vertices minus their mean: the ratio of
    # the groups' mean norms is measured against the mean of all classes
    centred = etf * scale[:, None]
    centred = centred - centred.mean(0)
    norms = centred.norm(dim=1)
    assert metrics['mean_norm_ratio_many'] == pytest.approx(
        (norms[:2].mean() / norms.mean()).item())
    assert metrics['mean_norm_ratio_few'] == pytest.approx(
        (norms[2:].mean() / norms.mean()).item())
    assert metrics['mean_norm_ratio_few'] < 1 < metrics[
        'mean_norm_ratio_many']


def test_equal_norms_give_one():
    etf = simplex_etf(4, 8, seed=1).double()
    labels = torch.arange(4).repeat_interleave(3)
    metrics = neural_collapse_metrics(etf[labels], labels, 4,
                                      class_counts=[50, 50, 5, 5],
                                      many_thr=20, few_thr=20)
    assert metrics['mean_norm_ratio_few'] == pytest.approx(1.0)
    assert 'mean_norm_ratio_medium' not in metrics  # empty group
    assert 'mean_norm_ratio_few' not in neural_collapse_metrics(
        etf[labels], labels, 4)  # no counts, no groups
