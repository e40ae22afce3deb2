# Long-tailed synthetic detection data, generated in memory by etf_plugin's
# SyntheticShapes (six classes of coloured rectangles/ellipses on noise):
# nothing to download. Train: 24 ... 2 instances per class (imbalance ratio
# 0.1); validation: another seed, 6 instances of every class.
dataset_type = 'SyntheticShapes'
img_size = 128

train_pipeline = [
    dict(type='LoadImageFromNDArray'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromNDArray'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    # 'instances' lets CocoMetric build its ground truth without an ann file
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'instances')),
]

train_dataloader = dict(
    batch_size=4,
    # the images are in memory: worker processes would only copy them
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        n_max=24,
        imbalance_ratio=0.1,
        img_size=img_size,
        seed=0,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        n_max=6,
        imbalance_ratio=1.0,
        img_size=img_size,
        seed=1,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# ann_file=None: mmdet's CocoMetric converts the packed 'instances' to COCO
# json itself; classwise=True logs AP of every (head to tail) class.
val_evaluator = dict(
    type='CocoMetric', ann_file=None, metric='bbox', classwise=True)
test_evaluator = val_evaluator
