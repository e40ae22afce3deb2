# ImageNet-LT (Liu et al. 2019): 115,846 training images of 1000 classes
# (1280 ... 5 per class) and a balanced 50-per-class test set, both drawn from
# ImageNet-2012 and given as list files of "relative/path.JPEG label" lines:
#   data/imagenet/ImageNet_LT_train.txt   (train/n01440764/n01440764_190.JPEG 0)
#   data/imagenet/ImageNet_LT_test.txt    (val/n01440764/ILSVRC2012_val_....JPEG 0)
#   data/imagenet/train/<wnid>/*.JPEG, data/imagenet/val/<wnid>/*.JPEG
# `ImageNet` (not `split=...`, which would prepend the folder a second time)
# keeps the 1000 class names in metainfo.
data_root = 'data/imagenet'

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        ann_file='ImageNet_LT_train.txt',
        data_prefix='',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        ann_file='ImageNet_LT_test.txt',
        data_prefix='',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
