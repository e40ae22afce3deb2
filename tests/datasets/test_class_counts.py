import numpy as np
import pytest
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from mmengine.dataset import ClassBalancedDataset, RepeatDataset

from etf_plugin.datasets import training_class_counts
from etf_plugin.utils.class_counts import (ClassCountsConsumer,
                                           load_class_counts)

LABELS = [0] * 7 + [1] * 3 + [3] * 2  # class 2 has no sample


@DATASETS.register_module(force=True)
class CountsFakeTrain(BaseDataset):
    """Labels only; counts how often its annotations and samples are read."""
    annotation_reads = 0
    sample_loads = 0

    def load_data_list(self):
        CountsFakeTrain.annotation_reads += 1
        return [
            dict(img_path=f'{i}.jpg', gt_label=y) for i, y in enumerate(LABELS)
        ]

    def prepare_data(self, idx):
        CountsFakeTrain.sample_loads += 1
        return super().prepare_data(idx)


def fake_train(**kwargs):
    return dict(
        type='CountsFakeTrain',
        ann_file='',
        metainfo=dict(classes=['a', 'b', 'c', 'd']),
        **kwargs)


def test_three_sources_agree(tmp_path):
    path = tmp_path / 'counts.txt'
    path.write_text('7\n3\n\n0\n2\n')
    expected = [7, 3, 0, 2]
    from_list = load_class_counts(class_counts=expected)
    from_file = load_class_counts(counts_file=str(path))
    from_dataset = training_class_counts(DATASETS.build(fake_train()))
    # a LongTailDataset, even a lazily initialised one: its metainfo
    long_tail = DATASETS.build(
        dict(
            type='LongTailDataset',
            dataset=fake_train(),
            counts=[5, 3, 0, 1],
            allow_empty=True,
            lazy_init=True))
    from_long_tail = training_class_counts(long_tail, num_classes=4)
    for counts in (from_list, from_file, from_dataset):
        assert counts.dtype == np.int64
        assert counts.tolist() == expected
    assert from_long_tail.tolist() == [5, 3, 0, 1]
    assert CountsFakeTrain.sample_loads == 0  # labels only
    assert load_class_counts() is None  # no override


def test_repeating_wrappers_count_distinct_samples():
    train = DATASETS.build(fake_train())
    repeated = RepeatDataset(train, times=3)
    balanced = ClassBalancedDataset(train, oversample_thr=0.5)
    assert len(repeated) == 3 * len(train)
    assert len(balanced) > len(train)
    for dataset in (repeated, balanced):
        assert training_class_counts(dataset).tolist() == [7, 3, 0, 2]
    with pytest.raises(ValueError, match='model has 5'):
        training_class_counts(train, num_classes=5)


def test_bad_values(tmp_path):
    with pytest.raises(ValueError, match='not both'):
        load_class_counts(class_counts=[1], counts_file='c.txt')
    with pytest.raises(ValueError, match='counts_file=PATH'):
        load_class_counts(class_counts='counts.txt')
    with pytest.raises(ValueError, match='non-negative integers'):
        load_class_counts(class_counts=[3, -1])
    with pytest.raises(ValueError, match='non-negative integers'):
        load_class_counts(class_counts=[3, 1.5])
    with pytest.raises(ValueError, match='non-empty'):
        load_class_counts(class_counts=[])
    path = tmp_path / 'counts.txt'
    path.write_text('7\nseven\n')
    with pytest.raises(ValueError, match=r'counts.txt:2 .*one integer count'):
        load_class_counts(counts_file=str(path))
    with pytest.raises(FileNotFoundError):
        load_class_counts(counts_file=str(tmp_path / 'missing.txt'))


class Consumer(ClassCountsConsumer):
    def __init__(self, **kwargs):
        self.derived = None
        self._init_class_counts(**kwargs)

    def _on_class_counts(self, counts):
        self.derived = counts.sum()


def test_consumer_takes_counts_unless_given_its_own():
    consumer = Consumer()
    assert not consumer.has_class_counts
    with pytest.raises(RuntimeError, match="ClassCountsHook"):
        consumer.class_counts
    consumer.set_class_counts(np.array([4, 2]))
    assert consumer.class_counts.tolist() == [4, 2]
    assert consumer.derived == 6
    with pytest.raises(ValueError, match='non-negative'):
        consumer.set_class_counts(np.array([4, -2]))
    # the caller cannot change the stored counts
    consumer.class_counts[0] = 100
    assert consumer.class_counts.tolist() == [4, 2]

    explicit = Consumer(class_counts=[1, 1, 1])
    assert explicit.derived == 3
    explicit.set_class_counts(np.array([9, 9, 9]))
    assert explicit.class_counts.tolist() == [1, 1, 1]
