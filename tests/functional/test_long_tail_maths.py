import numpy as np
import pytest
import torch

from etf_plugin.functional.long_tail import (class_power_weights,
                                             long_tail_counts,
                                             long_tail_indices, shot_groups)


def test_exp_counts_match_reference_loop():
    for num_classes, n_max in [(10, 5000), (100, 500), (1000, 1280)]:
        expected = [
            int(n_max * 0.01**(i / (num_classes - 1.0)))
            for i in range(num_classes)
        ]
        counts = long_tail_counts(num_classes, n_max, 0.01, 'exp')
        assert counts.tolist() == expected
    assert long_tail_counts(100, 500, 0.01).sum() == 10847
    assert long_tail_counts(10, 5000, 0.01).sum() == 12406
    # ratio 1 is the balanced set; one class is allowed.
    assert long_tail_counts(4, 7, 1.0).tolist() == [7] * 4
    assert long_tail_counts(1, 7, 0.1).tolist() == [7]


def test_step_counts_odd_classes():
    # Cao et al.: the first K // 2 keep n_max, so 2 head and 3 tail classes.
    counts = long_tail_counts(5, 100, 0.1, 'step')
    assert counts.tolist() == [100, 100, 10, 10, 10]


def test_counts_class_order():
    counts = long_tail_counts(3, 100, 0.01, 'exp', class_order=[1, 2, 0])
    # rank 0 -> class 1, rank 1 -> class 2, rank 2 -> class 0
    assert counts.tolist() == [1, 100, 10]
    with pytest.raises(ValueError, match='permutation'):
        long_tail_counts(3, 100, 0.01, class_order=[0, 1])


@pytest.mark.parametrize('kwargs,match', [
    (dict(imbalance_ratio=0.0), 'imbalance_ratio'),
    (dict(imbalance_ratio=2.0), 'imbalance_ratio'),
    (dict(profile='linear'), 'Unknown long-tail profile'),
    (dict(n_max=0), 'n_max'),
    (dict(num_classes=0), 'num_classes'),
])
def test_counts_bad_input(kwargs, match):
    args = dict(num_classes=10, n_max=100, imbalance_ratio=0.1, profile='exp')
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        long_tail_counts(**args)


def test_indices_realise_counts_and_clip():
    labels = np.random.default_rng(0).integers(0, 5, size=1000)
    available = np.bincount(labels, minlength=5)
    targets = np.array([500, 100, 10, 1, 0])
    idx = long_tail_indices(labels, targets, seed=4)
    assert np.array_equal(
        np.bincount(labels[idx], minlength=5), np.minimum(targets, available))
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, long_tail_indices(labels, targets, seed=4))
    assert not np.array_equal(idx, long_tail_indices(labels, targets, seed=5))
    # Torch labels work too.
    assert np.array_equal(
        idx, long_tail_indices(torch.from_numpy(labels), targets, seed=4))


def reference_long_tail_indices(labels, class_counts, seed):
    """The definition, plainly: one seeded permutation, a stable sort by
    label, the first n_c samples of every class, sorted."""
    labels = np.asarray(labels, dtype=np.int64)
    shuffled = np.random.default_rng(seed).permutation(len(labels))
    by_class = shuffled[np.argsort(labels[shuffled], kind='stable')]
    # by_class cut where the (sorted) label changes: one array per class.
    bounds = np.searchsorted(labels[by_class], np.arange(1, len(class_counts)))
    per_class = np.split(by_class, bounds)
    kept = [members[:n] for members, n in zip(per_class, class_counts)]
    return np.sort(np.concatenate(kept)).astype(np.int64)


@pytest.mark.parametrize('num_classes', [1, 5, 256, 257, 1000, 70_000])
@pytest.mark.parametrize('seed', [0, 1, 7, 2024])
def test_indices_equal_numpy_reference(num_classes, seed):
    # 1, 256 and 257 classes straddle the uint8/uint16 keys, 70,000 classes
    # need int64 keys. Class sizes are uneven and targets are drawn around
    # them, so some classes keep everything (fewer samples than their
    # target), some keep nothing and one class is absent.
    rng = np.random.default_rng(num_classes * 10 + seed)
    num_labels = max(4 * num_classes, 3000)
    profile = rng.pareto(1.0, size=num_classes) + 0.1
    if num_classes > 1:
        profile[num_classes // 2] = 0  # an absent class
    labels = rng.choice(
        num_classes, size=num_labels, p=profile / profile.sum())
    sizes = np.bincount(labels, minlength=num_classes)
    # Targets from 0 to twice the class size: some below, some above it.
    targets = np.rint(sizes * rng.uniform(0, 2, size=num_classes)).astype(
        np.int64) + rng.integers(0, 3, size=num_classes)
    targets[rng.random(num_classes) < 0.2] = 0
    if num_classes > 1:  # at least one of each case, whatever the draw
        some = rng.permutation(np.flatnonzero(sizes >= 2))[:3]
        targets[some] = [0, sizes[some[1]] + 3, sizes[some[2]] // 2]
    expected = reference_long_tail_indices(labels, targets, seed)
    if num_classes > 1:
        assert (sizes < targets).any() and (targets == 0).any()
        assert ((0 < targets) & (targets < sizes)).any()
    for given in (labels, labels.astype(np.int32),
                  torch.from_numpy(labels)):
        idx = long_tail_indices(given, targets, seed=seed)
        assert idx.dtype == np.int64
        assert np.array_equal(idx, expected)


def test_indices_empty_and_unbalanced_extremes():
    assert long_tail_indices([], [3, 2]).tolist() == []
    assert long_tail_indices(np.zeros(0, np.int64), []).tolist() == []
    labels = np.array([1, 1, 1, 0])
    assert long_tail_indices(labels, [0, 0], seed=3).tolist() == []
    assert long_tail_indices(labels, [5, 5], seed=3).tolist() == [0, 1, 2, 3]
    for seed in range(5):
        assert np.array_equal(
            long_tail_indices(labels, [1, 2], seed=seed),
            reference_long_tail_indices(labels, [1, 2], seed))


def test_indices_uniform_within_class():
    # One class of 10 samples keeping 3: over many seeds each sample is kept
    # with probability 3/10.
    labels = np.zeros(10, dtype=np.int64)
    kept = np.zeros(10)
    for seed in range(2000):
        idx = long_tail_indices(labels, [3], seed=seed)
        assert len(idx) == 3
        kept[idx] += 1
    assert np.allclose(kept / 2000, 0.3, atol=0.05)


def test_indices_bad_input():
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        long_tail_indices([0, 1, 2], [1, 1])
    with pytest.raises(ValueError, match='non-negative'):
        long_tail_indices([0, 1], [1, -1])


def test_class_power_weights():
    labels = np.array([0, 0, 0, 0, 1])
    for power in (0.0, 0.5, 1.0):
        weights = class_power_weights(labels, power)
        per_class = np.bincount(labels, weights=weights)
        assert np.allclose(per_class, np.array([4.0, 1.0])**power)


def test_shot_groups_boundaries():
    counts = [500, 101, 100, 20, 19, 0]
    groups = shot_groups(counts)
    assert groups['many'].tolist() == [0, 1]
    assert groups['medium'].tolist() == [2, 3]
    assert groups['few'].tolist() == [4, 5]
    groups = shot_groups(torch.tensor(counts), many_thr=200, few_thr=100)
    assert groups['many'].tolist() == [0]
    assert groups['medium'].tolist() == [1, 2]
    assert groups['few'].tolist() == [3, 4, 5]
    # Empty groups are empty arrays, not missing keys.
    assert shot_groups([5, 6])['many'].tolist() == []
    with pytest.raises(ValueError, match='few_thr'):
        shot_groups(counts, many_thr=10, few_thr=20)
