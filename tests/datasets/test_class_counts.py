import numpy as np
import pytest
from mmengine.registry import DefaultScope
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from etf_plugin.datasets import LazyClassCounts, load_class_counts

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
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        from_dataset = load_class_counts(train_dataset=fake_train())
        # a LongTailDataset config, even a lazily initialised one
        from_long_tail = load_class_counts(
            train_dataset=dict(
                type='LongTailDataset',
                dataset=fake_train(),
                counts=[5, 3, 0, 1],
                allow_empty=True,
                lazy_init=True))
    for counts in (from_list, from_file, from_dataset):
        assert counts.dtype == np.int64
        assert counts.tolist() == expected
    assert from_long_tail.tolist() == [5, 3, 0, 1]
    assert CountsFakeTrain.sample_loads == 0  # labels only


def test_exactly_one_source_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match='MyLoss needs .* exactly one'):
        load_class_counts(owner='MyLoss')
    with pytest.raises(
            ValueError, match=r"got \['class_counts', "
            r"'counts_file'\]"):
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
    with pytest.raises(ValueError, match='one integer count per line'):
        load_class_counts(counts_file=str(path))
    with pytest.raises(FileNotFoundError):
        load_class_counts(counts_file=str(tmp_path / 'missing.txt'))


def test_lazy_counts_read_a_dataset_once_on_first_call():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        reads = CountsFakeTrain.annotation_reads
        lazy = LazyClassCounts(train_dataset=fake_train())
        assert not lazy.is_loaded
        assert CountsFakeTrain.annotation_reads == reads
        assert lazy().tolist() == [7, 3, 0, 2]
        assert lazy().tolist() == [7, 3, 0, 2]
        assert CountsFakeTrain.annotation_reads == reads + 1
    # lists are read and checked at once
    assert LazyClassCounts(class_counts=[4, 2]).is_loaded
    with pytest.raises(ValueError, match='non-negative'):
        LazyClassCounts(class_counts=[4, -2])
    with pytest.raises(ValueError, match='exactly one'):
        LazyClassCounts()
    # the caller cannot change the stored counts
    lazy = LazyClassCounts(class_counts=[4, 2])
    lazy()[0] = 100
    assert lazy().tolist() == [4, 2]
