import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from etf_plugin.datasets import LongTailDataset, read_gt_labels


class CountingPipeline:
    """Stands in for LoadImageFromFile + transforms: counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, results):
        self.calls += 1
        return results


@DATASETS.register_module(force=True)
class FakeLabelDataset(BaseDataset):
    """In-memory dataset with given labels and no images (no download)."""

    def __init__(self, labels, num_classes=None, **kwargs):
        self._fake_labels = [int(y) for y in labels]
        num_classes = num_classes or max(self._fake_labels) + 1
        super().__init__(
            ann_file='',
            metainfo=dict(classes=[f'class_{c}' for c in range(num_classes)]),
            **kwargs)

    def load_data_list(self):
        return [
            dict(img_path=f'img_{i}.jpg', gt_label=y)
            for i, y in enumerate(self._fake_labels)
        ]


def cifar_labels(num_classes, per_class):
    # Interleaved like the real CIFAR files, not sorted by class.
    return np.tile(np.arange(num_classes), per_class)


def exp_reference(num_classes, n_max, ratio):
    # The CIFAR-LT reference loop (Cao et al. 2019), written out again.
    return [
        int(n_max * ratio**(i / (num_classes - 1.0)))
        for i in range(num_classes)
    ]


@pytest.fixture(scope='module')
def cifar100_train():
    return FakeLabelDataset(cifar_labels(100, 500))


@pytest.fixture(scope='module')
def cifar10_train():
    return FakeLabelDataset(cifar_labels(10, 5000))


def test_exp_profile_cifar100_lt(cifar100_train):
    lt = LongTailDataset(cifar100_train, imbalance_ratio=0.01, profile='exp')
    counts = lt.metainfo['class_counts']
    assert counts == exp_reference(100, 500, 0.01)
    assert counts[0] == 500 and counts[-1] == 5
    assert len(lt) == sum(counts) == 10847
    # The kept samples really carry those labels.
    labels = lt.get_gt_labels()
    assert np.bincount(labels, minlength=100).tolist() == counts
    original = cifar100_train.get_gt_labels()
    assert np.array_equal(labels, original[lt._ori_indices])


@pytest.mark.parametrize('ratio,total', [(0.005, 11203), (0.01, 12406),
                                         (0.02, 13996)])
def test_exp_profile_cifar10_lt(cifar10_train, ratio, total):
    lt = LongTailDataset(cifar10_train, imbalance_ratio=ratio)
    assert lt.metainfo['class_counts'] == exp_reference(10, 5000, ratio)
    assert len(lt) == total


def test_step_profile(cifar10_train):
    lt = LongTailDataset(cifar10_train, imbalance_ratio=0.01, profile='step')
    assert lt.metainfo['class_counts'] == [5000] * 5 + [50] * 5
    assert len(lt) == 25250


def test_class_order_permutes_profile(cifar10_train):
    order = np.random.default_rng(3).permutation(10).tolist()
    lt = LongTailDataset(cifar10_train, imbalance_ratio=0.01,
                         class_order=order)
    counts = lt.metainfo['class_counts']
    by_rank = exp_reference(10, 5000, 0.01)
    assert [counts[c] for c in order] == by_rank
    assert counts != by_rank  # the permutation did move classes


def test_explicit_counts_with_order():
    ds = FakeLabelDataset(cifar_labels(3, 10))
    lt = LongTailDataset(ds, counts=[7, 4, 1], class_order=[2, 0, 1])
    assert lt.profile == 'counts'
    assert lt.metainfo['class_counts'] == [4, 1, 7]
    assert np.bincount(lt.get_gt_labels()).tolist() == [4, 1, 7]


def test_n_max_options_and_clipping():
    # Uneven dataset: class 0 has 8 samples, classes 1 and 2 have 4.
    labels = [0] * 8 + [1] * 4 + [2] * 4
    ds = FakeLabelDataset(labels)
    # 'largest': targets 8, 4, 2 -> class 1 reaches 4 exactly.
    lt = LongTailDataset(ds, imbalance_ratio=0.25)
    assert lt.metainfo['class_counts'] == [8, 4, 2]
    # int n_max above what class 1 and 2 have: they keep all they have.
    lt = LongTailDataset(ds, imbalance_ratio=1.0, n_max=6)
    assert lt.metainfo['class_counts'] == [6, 4, 4]
    # 'smallest': n_max = 4, every target reachable.
    lt = LongTailDataset(ds, imbalance_ratio=0.25, n_max='smallest')
    assert lt.metainfo['class_counts'] == [4, 2, 1]


def test_deterministic_and_independent_of_global_rng(cifar100_train):
    np.random.seed(1)
    torch.manual_seed(1)
    first = LongTailDataset(cifar100_train, seed=0)._ori_indices
    np.random.seed(2)
    torch.manual_seed(2)
    state_np = np.random.get_state()[1].copy()
    state_torch = torch.get_rng_state().clone()
    second = LongTailDataset(cifar100_train, seed=0)._ori_indices
    assert np.array_equal(first, second)
    # Building the subset did not consume the global generators.
    assert np.array_equal(np.random.get_state()[1], state_np)
    assert torch.equal(torch.get_rng_state(), state_torch)
    other = LongTailDataset(cifar100_train, seed=1)._ori_indices
    assert not np.array_equal(first, other)
    assert np.all(np.diff(first) > 0)  # sorted, no duplicates


def test_no_image_is_loaded_while_building():
    pipeline = CountingPipeline()
    ds = FakeLabelDataset(cifar_labels(10, 50), pipeline=[pipeline])
    lt = LongTailDataset(ds, imbalance_ratio=0.1)
    lt.get_gt_labels()
    lt.get_cat_ids(3)
    lt.get_data_info(3)
    assert lt.metainfo['class_counts'][0] == 50
    assert len(lt) > 0
    assert pipeline.calls == 0
    item = lt[3]
    assert pipeline.calls == 1
    ori = lt._get_ori_dataset_idx(3)
    assert item['img_path'] == f'img_{ori}.jpg'
    assert lt.get_data_info(3)['img_path'] == f'img_{ori}.jpg'
    assert lt.get_cat_ids(3) == [item['gt_label']]


def test_lazy_init():
    ds = FakeLabelDataset(cifar_labels(10, 50), lazy_init=True)
    lt = LongTailDataset(ds, imbalance_ratio=0.1, lazy_init=True)
    assert not lt._fully_initialized
    assert not ds._fully_initialized
    assert 'class_counts' not in lt.metainfo
    assert lt.CLASSES[0] == 'class_0'
    assert len(lt) == sum(exp_reference(10, 50, 0.1))  # forces full_init
    assert lt._fully_initialized and ds._fully_initialized
    assert 'class_counts' in lt.metainfo


def test_build_from_config_and_class_attributes():
    cfg = dict(
        type='LongTailDataset',
        dataset=dict(type='FakeLabelDataset', labels=cifar_labels(4, 20)),
        imbalance_ratio=0.1,
        profile='exp',
        seed=0)
    lt = DATASETS.build(cfg)
    assert isinstance(lt, LongTailDataset)
    assert lt.CLASSES == ['class_0', 'class_1', 'class_2', 'class_3']
    assert lt.class_to_idx['class_2'] == 2
    assert lt.metainfo['classes'] == lt.CLASSES
    assert lt.metainfo['class_counts'] == exp_reference(4, 20, 0.1)
    # metainfo is a copy: callers cannot corrupt the wrapper.
    lt.metainfo['class_counts'][0] = -1
    assert lt.metainfo['class_counts'][0] == 20
    assert 'Number of samples' in repr(lt)


class CatIdsOnly:
    """A dataset that exposes its labels only through get_cat_ids."""

    def __init__(self, labels, multi=False):
        self.labels, self.multi = labels, multi

    def __len__(self):
        return len(self.labels)

    def get_cat_ids(self, idx):
        y = int(self.labels[idx])
        return [y, y + 1] if self.multi else [y]


def test_reads_labels_without_get_gt_labels():
    # mmengine's ConcatDataset has only get_data_info.
    pipeline = CountingPipeline()
    parts = [
        FakeLabelDataset(cifar_labels(3, 4), pipeline=[pipeline])
        for _ in range(2)
    ]
    concat = ConcatDataset(parts)
    assert not hasattr(concat, 'get_gt_labels')
    assert not hasattr(concat, 'get_cat_ids')
    assert read_gt_labels(concat).tolist() == cifar_labels(3, 4).tolist() * 2
    lt = LongTailDataset(concat, imbalance_ratio=0.25)
    assert lt.metainfo['class_counts'] == [8, 4, 2]
    assert pipeline.calls == 0
    labels = cifar_labels(3, 5)
    assert read_gt_labels(CatIdsOnly(labels)).tolist() == labels.tolist()
    with pytest.raises(ValueError, match='exactly one label'):
        read_gt_labels(CatIdsOnly(labels, multi=True))


@pytest.mark.parametrize('ratio', [0, -0.1, 1.5])
def test_bad_ratio(cifar10_train, ratio):
    with pytest.raises(ValueError, match='imbalance_ratio'):
        LongTailDataset(cifar10_train, imbalance_ratio=ratio)


def test_bad_arguments(cifar10_train):
    with pytest.raises(ValueError, match='Unknown long-tail profile'):
        LongTailDataset(cifar10_train, profile='linear')
    with pytest.raises(ValueError, match='11 entries but the dataset has 10'):
        LongTailDataset(cifar10_train, counts=[5] * 11)
    with pytest.raises(ValueError, match='only one'):
        LongTailDataset(cifar10_train, profile='exp', counts=[5] * 10)
    with pytest.raises(ValueError, match='permutation'):
        LongTailDataset(cifar10_train, class_order=[0] * 10)
    with pytest.raises(ValueError, match='n_max'):
        LongTailDataset(cifar10_train, n_max='median')


def test_empty_class_is_named_unless_allowed():
    ds = FakeLabelDataset(cifar_labels(5, 50))
    # int(50 * 0.01) = 0: the last class would vanish.
    with pytest.raises(ValueError, match=r'classes 4 \(class_4\)'):
        LongTailDataset(ds, imbalance_ratio=0.01)
    lt = LongTailDataset(ds, imbalance_ratio=0.01, allow_empty=True)
    assert lt.metainfo['class_counts'][-1] == 0
    assert 4 not in lt.get_gt_labels()
    # A class absent from the wrapped dataset is reported too.
    ds = FakeLabelDataset([0, 0, 1, 1], num_classes=3)
    with pytest.raises(ValueError, match='has none of them'):
        LongTailDataset(ds, imbalance_ratio=1.0)


def test_heldout_split_is_disjoint_bounded_and_seeded():
    labels = cifar_labels(10, 40)
    base = FakeLabelDataset(labels)
    options = dict(imbalance_ratio=0.1, seed=3)
    train = LongTailDataset(base, **options)
    heldout = LongTailDataset(
        base, split='heldout', heldout_per_class=15, **options)
    train_idx = {train._get_ori_dataset_idx(i) for i in range(len(train))}
    held_idx = [heldout._get_ori_dataset_idx(i) for i in range(len(heldout))]
    assert not train_idx & set(held_idx)  # never a training image
    assert len(set(held_idx)) == len(held_idx)
    kept = np.asarray(train.metainfo['class_counts'])
    counts = np.asarray(heldout.metainfo['class_counts'])
    # up to 15 of what the subset left out (40 - kept per class)
    assert counts.tolist() == np.minimum(15, 40 - kept).tolist()
    assert held_idx == [
        LongTailDataset(base, split='heldout', heldout_per_class=15,
                        **options)._get_ori_dataset_idx(i)
        for i in range(len(heldout))
    ]
    other = LongTailDataset(
        base, split='heldout', heldout_per_class=15, imbalance_ratio=0.1,
        seed=4)
    assert sorted(other._ori_indices.tolist()) != sorted(held_idx)
    with pytest.raises(ValueError, match="heldout_per_class=N goes with"):
        LongTailDataset(base, split='heldout')
    with pytest.raises(ValueError, match="heldout_per_class=N goes with"):
        LongTailDataset(base, heldout_per_class=3)
    with pytest.raises(ValueError, match='positive integer'):
        LongTailDataset(base, split='heldout', heldout_per_class=2.5)
    with pytest.raises(ValueError, match="'train' or 'heldout'"):
        LongTailDataset(base, split='val')


def test_heldout_config_follows_the_training_config():
    from etf_plugin.datasets import heldout_dataset_cfg
    train_cfg = dict(
        type='LongTailDataset',
        dataset=dict(type='Digits', split='train',
                     pipeline=[dict(type='RandomCrop', crop_size=8),
                               dict(type='PackInputs')]),
        imbalance_ratio=0.02, seed=7)
    cfg = heldout_dataset_cfg(train_cfg, 20, [dict(type='PackInputs')])
    assert cfg['split'] == 'heldout' and cfg['heldout_per_class'] == 20
    assert cfg['imbalance_ratio'] == 0.02 and cfg['seed'] == 7
    assert cfg['dataset']['pipeline'] == [dict(type='PackInputs')]
    assert train_cfg['dataset']['pipeline'][0]['type'] == 'RandomCrop'
    with pytest.raises(ValueError, match='ImageNet_LT_val'):
        heldout_dataset_cfg(dict(type='ImageNet'), 20)


def test_browse_tools_can_swap_the_pipeline():
    base = FakeLabelDataset(cifar_labels(4, 10), pipeline=[])
    dataset = LongTailDataset(base, imbalance_ratio=0.5)
    pipeline = CountingPipeline()
    dataset.pipeline = pipeline  # what browse_dataset.py does
    assert base.pipeline is pipeline and dataset.pipeline is pipeline
    dataset[0]
    assert pipeline.calls == 1


def test_class_order_seed_none_is_the_unpermuted_subset():
    # The default keeps today's subset: the identity order, nothing added to
    # the metainfo, the same indices as an explicit class_order=None.
    ds = FakeLabelDataset(cifar_labels(10, 60))
    default = LongTailDataset(ds, imbalance_ratio=0.05, seed=4)
    explicit = LongTailDataset(ds, imbalance_ratio=0.05, seed=4,
                               class_order_seed=None)
    identity = LongTailDataset(ds, imbalance_ratio=0.05, seed=4,
                               class_order=list(range(10)))
    assert default._ori_indices.tolist() == explicit._ori_indices.tolist()
    assert default._ori_indices.tolist() == identity._ori_indices.tolist()
    assert default.metainfo['class_counts'] == exp_reference(10, 60, 0.05)
    assert 'class_order' not in default.metainfo
    assert identity.metainfo['class_order'] == list(range(10))


def test_class_order_seed_permutes_which_classes_are_the_tail():
    ds = FakeLabelDataset(cifar_labels(10, 60))
    by_rank = exp_reference(10, 60, 0.05)
    orders = []
    for class_order_seed in (0, 1):
        lt = LongTailDataset(ds, imbalance_ratio=0.05, seed=4,
                             class_order_seed=class_order_seed)
        order = lt.metainfo['class_order']
        assert sorted(order) == list(range(10))
        counts = lt.metainfo['class_counts']
        # Class order[i] takes rank i: the profile is only re-assigned.
        assert [counts[c] for c in order] == by_rank
        assert sorted(counts) == sorted(by_rank)
        assert counts != by_rank
        assert np.bincount(lt.get_gt_labels(), minlength=10).tolist() == \
            counts
        again = LongTailDataset(ds, imbalance_ratio=0.05, seed=4,
                                class_order_seed=class_order_seed)
        assert again._ori_indices.tolist() == lt._ori_indices.tolist()
        orders.append(order)
    assert orders[0] != orders[1]
    # The held-out split follows the training subset's permuted order.
    heldout = LongTailDataset(ds, imbalance_ratio=0.05, seed=4,
                              class_order_seed=1, split='heldout',
                              heldout_per_class=5)
    assert not set(heldout._ori_indices) & set(lt._ori_indices)
    with pytest.raises(ValueError, match='only one of them'):
        LongTailDataset(ds, class_order=list(range(10)), class_order_seed=0)
