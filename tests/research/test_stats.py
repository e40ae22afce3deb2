"""research.stats: accuracies from stored predictions (the
LongTailAccuracy definitions) and paired bootstrap intervals."""
import numpy as np
import pytest
import torch

from etf_plugin.evaluation import LongTailAccuracy
from research.stats import (accuracy_metrics, decode_labels, encode_labels,
                            format_ci, paired_bootstrap,
                            paired_bootstrap_images, verdict)

COUNTS = [124, 74, 44, 26, 16, 9, 5, 3, 2, 1]


def test_labels_round_trip():
    labels = np.array([0, 9, 3, 3, 1])
    assert encode_labels(labels) == '09331'
    assert np.array_equal(decode_labels('09331'), labels)
    with pytest.raises(ValueError, match='0..9'):
        encode_labels([10])


def test_accuracy_metrics_equal_long_tail_accuracy():
    rng = np.random.default_rng(0)
    gt = np.repeat(np.arange(10), 50)
    pred = np.where(rng.random(500) < 0.7, gt, rng.integers(0, 10, 500))
    ours = accuracy_metrics(pred, gt, COUNTS, many_thr=50, few_thr=10)
    metric = LongTailAccuracy(class_counts=COUNTS, many_thr=50, few_thr=10)
    metric.process(None, [
        dict(gt_label=torch.tensor([g]), pred_label=torch.tensor([p]))
        for g, p in zip(gt, pred)
    ])
    theirs = metric.evaluate(len(gt))
    for key in ('top1', 'macro', 'many', 'medium', 'few'):
        assert ours[key] == pytest.approx(theirs[f'lt/{key}'], abs=1e-9), key


def test_accuracy_metrics_leave_out_empty_groups():
    gt = np.repeat(np.arange(10), 5)
    mild = [124, 96, 74, 57, 44, 34, 26, 20, 16, 12]  # no class below 10
    assert 'few' not in accuracy_metrics(gt, gt, mild, 50, 10)


def test_paired_bootstrap():
    a = np.array([80.0, 82.0, 84.0, 86.0])
    ci = paired_bootstrap(a + 2.0, a)
    assert ci['mean'] == pytest.approx(2.0)
    assert ci['lo'] == pytest.approx(2.0) and ci['hi'] == pytest.approx(2.0)
    assert ci['wins'] == 4 and ci['losses'] == 0 and ci['n'] == 4
    noisy = paired_bootstrap([1.0, -1.0, 2.0, -2.0], [0.0] * 4)
    assert noisy['lo'] < 0 < noisy['hi']
    assert verdict(noisy) == 'not resolved'
    assert verdict(ci) == 'higher'
    assert verdict(paired_bootstrap(a, a + 1)) == 'lower'
    words = dict(higher='CE faster', lower='DR faster', unresolved='tie')
    assert verdict(ci, **words) == 'CE faster'
    assert verdict(paired_bootstrap(a, a + 1), **words) == 'DR faster'
    assert verdict(noisy, **words) == 'tie'
    # reproducible: the resampling is seeded
    assert paired_bootstrap([1.0, -1.0, 3.0], [0, 0, 0]) == \
        paired_bootstrap([1.0, -1.0, 3.0], [0, 0, 0])
    assert format_ci(dict(mean=1.234, lo=-0.5, hi=2.0)) == \
        '+1.2 [-0.5, +2.0]'
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_image_bootstrap_is_wider_and_centred_on_the_paired_mean():
    rng = np.random.default_rng(1)
    gt = np.repeat(np.arange(10), 50)
    a = np.where(rng.random((6, 500)) < 0.85, gt, (gt + 1) % 10)
    b = np.where(rng.random((6, 500)) < 0.80, gt, (gt + 1) % 10)
    images = paired_bootstrap_images(a, b, gt, n_boot=2000)
    seeds = paired_bootstrap(100 * (a == gt).mean(1), 100 * (b == gt).mean(1),
                             n_boot=2000)
    assert images['mean'] == pytest.approx(seeds['mean'])
    assert images['hi'] - images['lo'] > seeds['hi'] - seeds['lo']
    # identical predictions: no difference whatever is resampled
    same = paired_bootstrap_images(a, a, gt, n_boot=200)
    assert same['lo'] == same['hi'] == 0.0
    # a group: the mean of its per-class accuracy differences
    few = paired_bootstrap_images(a, b, gt, classes=[7, 8, 9], n_boot=200)
    per_class = [100 * ((a == gt)[:, gt == c].mean(1) -
                        (b == gt)[:, gt == c].mean(1)) for c in (7, 8, 9)]
    assert few['mean'] == pytest.approx(np.mean(per_class))


def test_image_bootstrap_with_a_group_per_seed():
    rng = np.random.default_rng(2)
    gt = np.repeat(np.arange(10), 20)
    a = np.where(rng.random((4, 200)) < 0.85, gt, (gt + 1) % 10)
    b = np.where(rng.random((4, 200)) < 0.80, gt, (gt + 1) % 10)
    # one group for every seed: the same numbers, bit for bit
    mask = np.zeros((4, 10), bool)
    mask[:, [7, 8, 9]] = True
    assert paired_bootstrap_images(a, b, gt, class_mask=mask, n_boot=500) \
        == paired_bootstrap_images(a, b, gt, classes=[7, 8, 9], n_boot=500)
    # each seed its own group: each seed's mean over its own classes
    mask = np.zeros((4, 10), bool)
    for s, group in enumerate(([0, 1], [2], [3, 4, 5], [9])):
        mask[s, group] = True
    result = paired_bootstrap_images(a, b, gt, class_mask=mask, n_boot=500)
    hits = (a == gt).astype(float) - (b == gt)
    per_seed = [100 * np.mean([hits[s, gt == c].mean()
                               for c in np.flatnonzero(mask[s])])
                for s in range(4)]
    assert result['mean'] == pytest.approx(np.mean(per_seed))
    assert result['n'] == 4
    with pytest.raises(ValueError, match='not both'):
        paired_bootstrap_images(a, b, gt, classes=[1], class_mask=mask)
    mask[2] = False
    with pytest.raises(ValueError, match='no class'):
        paired_bootstrap_images(a, b, gt, class_mask=mask)
