"""SyntheticShapes: deterministic long-tailed detection data in memory."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, TRANSFORMS

import etf_plugin.det  # noqa: F401  (registers the mmdet components)
from etf_plugin.functional import long_tail_counts
from etf_plugin.det.synthetic_shapes import SHAPE_CLASSES, SyntheticShapes


def all_instances(dataset):
    return [
        inst for i in range(len(dataset))
        for inst in dataset.get_data_info(i)['instances']
    ]


def test_long_tailed_counts_and_valid_boxes():
    dataset = SyntheticShapes(n_max=12, imbalance_ratio=0.25, seed=0)
    instances = all_instances(dataset)
    counts = np.bincount([inst['bbox_label'] for inst in instances],
                         minlength=6)
    np.testing.assert_array_equal(counts, long_tail_counts(6, 12, 0.25))
    assert dataset.metainfo['classes'] == tuple(c[0] for c in SHAPE_CLASSES)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert info['img'].shape == (128, 128, 3)
        assert info['img'].dtype == np.uint8
        assert 1 <= len(info['instances']) <= 3
        assert dataset.get_cat_ids(i) == [
            inst['bbox_label'] for inst in info['instances']
        ]
        boxes = np.array([inst['bbox'] for inst in info['instances']])
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
        sides = boxes[:, 2:] - boxes[:, :2]
        assert (sides >= 16).all() and (sides <= 48).all()
        for a in range(len(boxes)):
            for b in range(a):  # no two boxes touch
                assert (boxes[a, 0] > boxes[b, 2] or boxes[b, 0] > boxes[a, 2]
                        or boxes[a, 1] > boxes[b, 3]
                        or boxes[b, 1] > boxes[a, 3])


def test_shapes_are_drawn_in_their_class_colour():
    dataset = SyntheticShapes(n_max=6, imbalance_ratio=1.0, seed=2)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        for inst in info['instances']:
            x1, y1, x2, y2 = (int(v) for v in inst['bbox'])
            _, colour, _ = SHAPE_CLASSES[inst['bbox_label']]
            # the centre pixel belongs to the shape (rectangle or ellipse)
            centre = info['img'][(y1 + y2) // 2, (x1 + x2) // 2].astype(int)
            assert np.abs(centre - np.array(colour)).max() <= 25
            # ellipses leave the corners to the background noise
            corner = info['img'][y1, x1]
            if SHAPE_CLASSES[inst['bbox_label']][2] == 'ellipse':
                assert corner.max() < 110


def test_deterministic_per_seed():
    first = SyntheticShapes(n_max=8, seed=5)
    again = SyntheticShapes(n_max=8, seed=5)
    other = SyntheticShapes(n_max=8, seed=6)
    assert len(first) == len(again)
    for i in range(len(first)):
        a, b = first.get_data_info(i), again.get_data_info(i)
        assert np.array_equal(a['img'], b['img'])
        assert a['instances'] == b['instances']
    assert not np.array_equal(first.get_data_info(0)['img'],
                              other.get_data_info(0)['img'])


def test_rejects_boxes_that_cannot_fit():
    with pytest.raises(ValueError, match='do not fit'):
        SyntheticShapes(img_size=64, max_per_img=3, max_size=48)
    with pytest.raises(ValueError, match='min_size'):
        SyntheticShapes(min_size=40, max_size=20)


def test_images_are_files_for_mmdets_loader(tmp_path):
    dataset = SyntheticShapes(n_max=6, seed=3, img_dir=str(tmp_path))
    loader = TRANSFORMS.build(dict(type='LoadImageFromFile'))
    paths = set()
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        paths.add(info['img_path'])
        assert osp.dirname(info['img_path']) == str(tmp_path)
        # lossless: mmdet's LoadImageFromFile reads back the drawn image
        loaded = loader(dict(img_path=info['img_path']))['img']
        assert np.array_equal(loaded, info['img'])
    assert len(paths) == len(dataset)
    assert not list(tmp_path.glob('*.tmp'))  # atomic writes, no leftovers
    # regenerating rewrites the same files
    again = SyntheticShapes(n_max=6, seed=3, img_dir=str(tmp_path))
    assert again.get_data_info(0)['img_path'] == dataset.get_data_info(
        0)['img_path']
    # by default every set gets its own folder
    default_a = SyntheticShapes(n_max=2, seed=3, lazy_init=True)
    default_b = SyntheticShapes(n_max=2, seed=4, lazy_init=True)
    assert default_a.img_dir != default_b.img_dir
    assert default_a.img_dir == SyntheticShapes(
        n_max=2, seed=3, lazy_init=True).img_dir


def test_mmdet_pipeline_and_lazy_init():
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_shape', 'ori_shape', 'scale_factor',
                        'instances')),
    ]
    lazy = DATASETS.build(
        dict(type='SyntheticShapes', pipeline=pipeline, lazy_init=True))
    assert not lazy._fully_initialized
    dataset = DATASETS.build(dict(type='SyntheticShapes', pipeline=pipeline))
    packed = dataset[0]
    info = dataset.get_data_info(0)
    assert packed['inputs'].shape == (3, 128, 128)
    assert packed['inputs'].dtype == torch.uint8
    sample = packed['data_samples']
    assert sample.gt_instances.labels.tolist() == dataset.get_cat_ids(0)
    torch.testing.assert_close(
        sample.gt_instances.bboxes.tensor,
        torch.tensor([inst['bbox'] for inst in info['instances']]))
    assert sample.metainfo['instances'] == info['instances']
