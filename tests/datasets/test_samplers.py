import numpy as np
import pytest
from mmpretrain.registry import DATA_SAMPLERS

import etf_plugin.datasets.samplers as samplers_module
from etf_plugin.datasets import (ClassBalancedSampler, ClassPowerSampler,
                                 LongTailDataset, SquareRootSampler)
from etf_plugin.functional.long_tail import long_tail_counts


class LabelOnlyDataset:
    """The minimal dataset a sampler needs: a length and the labels."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def __len__(self):
        return len(self.labels)

    def get_gt_labels(self):
        return self.labels


# CIFAR-10-LT shaped, scaled by 1/10: 500 ... 5 per class.
COUNTS = long_tail_counts(10, 500, 0.01)
LABELS = np.repeat(np.arange(10), COUNTS)


def class_frequencies(sampler, num_classes=10):
    drawn = LABELS[np.fromiter(iter(sampler), dtype=np.int64)]
    return np.bincount(drawn, minlength=num_classes) / len(drawn)


def test_class_balanced_frequencies_are_uniform():
    sampler = ClassBalancedSampler(
        LabelOnlyDataset(LABELS), num_samples=100_000, seed=0)
    freq = class_frequencies(sampler)
    assert np.abs(freq - 0.1).max() < 0.01
    # The instance-balanced frequencies would be far from uniform.
    assert COUNTS[0] / COUNTS.sum() > 0.3


def test_square_root_frequencies():
    sampler = SquareRootSampler(
        LabelOnlyDataset(LABELS), num_samples=100_000, seed=0)
    target = np.sqrt(COUNTS) / np.sqrt(COUNTS).sum()
    assert np.abs(class_frequencies(sampler) - target).max() < 0.01


def test_power_one_is_instance_balanced():
    sampler = ClassPowerSampler(
        LabelOnlyDataset(LABELS), power=1.0, num_samples=100_000, seed=0)
    target = COUNTS / COUNTS.sum()
    assert np.abs(class_frequencies(sampler) - target).max() < 0.01


def test_uniform_within_class():
    # The 5 samples of the smallest class are drawn equally often.
    sampler = ClassBalancedSampler(
        LabelOnlyDataset(LABELS), num_samples=200_000, seed=1)
    drawn = np.fromiter(iter(sampler), dtype=np.int64)
    tail = np.flatnonzero(LABELS == 9)
    hits = np.array([(drawn == i).sum() for i in tail])
    assert np.abs(hits / hits.sum() - 0.2).max() < 0.02


def test_epoch_length_seed_and_set_epoch():
    dataset = LabelOnlyDataset(LABELS)
    sampler = ClassBalancedSampler(dataset, seed=3)
    assert len(sampler) == len(dataset)
    first = list(sampler)
    assert len(first) == len(dataset)
    assert first == list(ClassBalancedSampler(dataset, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(ClassBalancedSampler(dataset, seed=4)) != first


def test_distributed_shards(monkeypatch):
    dataset = LabelOnlyDataset(LABELS)
    reference = list(ClassBalancedSampler(dataset, num_samples=1000, seed=7))
    for rank in range(2):
        monkeypatch.setattr(samplers_module, 'get_dist_info',
                            lambda rank=rank: (rank, 2))
        sampler = ClassBalancedSampler(dataset, num_samples=1000, seed=7)
        # Ranks take interleaved positions of one global draw.
        assert list(sampler) == reference[rank::2]
        assert len(sampler) == 500
        odd = ClassBalancedSampler(dataset, num_samples=1001, seed=7)
        assert len(odd) == len(list(odd)) == 501  # ceil(1001 / 2) per rank


def test_build_from_config_on_long_tail_dataset():
    # As the Runner builds samplers: DATA_SAMPLERS + dataset/seed defaults.
    base = LabelOnlyDataset(np.tile(np.arange(10), 500))
    base.full_init = lambda: None
    base.metainfo = dict(classes=[str(c) for c in range(10)])
    lt = LongTailDataset(base, imbalance_ratio=0.01)
    sampler = DATA_SAMPLERS.build(
        dict(type='ClassBalancedSampler', num_samples=50_000),
        default_args=dict(dataset=lt, seed=0))
    assert isinstance(sampler, ClassBalancedSampler)
    drawn = lt.get_gt_labels()[np.fromiter(iter(sampler), dtype=np.int64)]
    freq = np.bincount(drawn, minlength=10) / len(drawn)
    assert np.abs(freq - 0.1).max() < 0.01
    sqrt_sampler = DATA_SAMPLERS.build(
        dict(type='SquareRootSampler'), default_args=dict(dataset=lt, seed=0))
    assert len(sqrt_sampler) == len(lt)


def test_bad_input():
    with pytest.raises(ValueError, match='empty'):
        ClassBalancedSampler(LabelOnlyDataset([]), seed=0)
    with pytest.raises(ValueError, match='num_samples'):
        ClassBalancedSampler(LabelOnlyDataset(LABELS), num_samples=0, seed=0)


def test_named_samplers_are_configurations_of_one():
    dataset = LabelOnlyDataset(LABELS)
    for named, power in ((ClassBalancedSampler, 0.0),
                         (SquareRootSampler, 0.5)):
        assert issubclass(named, ClassPowerSampler)
        assert named.__init__ is ClassPowerSampler.__init__
        sampler = named(dataset, num_samples=500, seed=2)
        assert sampler.power == power
        # the same draw as the general sampler with that power
        assert list(sampler) == list(
            ClassPowerSampler(dataset, power=power, num_samples=500, seed=2))
        with pytest.raises(ValueError, match='use ClassPowerSampler'):
            named(dataset, power=1.0)
    with pytest.raises(ValueError, match='needs power'):
        ClassPowerSampler(dataset)
