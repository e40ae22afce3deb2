# ImageNet-LT (Liu et al. 2019): MMPretrain's ImageNet settings on the
# standard ImageNet-LT list files, lines "relative/path.JPEG label":
#   data/imagenet/ImageNet_LT_train.txt  115,846 images, 1280 ... 5 per class
#   data/imagenet/ImageNet_LT_val.txt    20 per class (from ImageNet train)
#   data/imagenet/ImageNet_LT_test.txt   50 per class (ImageNet val)
#   data/imagenet/train/<wnid>/*.JPEG, data/imagenet/val/<wnid>/*.JPEG
# Training validates on the val list, so nothing is chosen on the test list;
# tools/test.py evaluates the test list. `ImageNet` with `ann_file` (not
# `split=...`, which would prepend the folder a second time) keeps the 1000
# class names in metainfo.
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs32.py']

# The authors' augmentation adds colour jitter to MMPretrain's.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='PackInputs'),
]

imagenet_lt = dict(
    _delete_=True, type='ImageNet', data_root='data/imagenet', data_prefix='')

train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        **imagenet_lt,
        ann_file='ImageNet_LT_train.txt',
        pipeline=train_pipeline),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        **imagenet_lt,
        ann_file='ImageNet_LT_val.txt',
        pipeline=_base_.test_pipeline),
)
# Many > 100, medium 20-100, few < 20 training images, counted from the
# training list the run uses (ClassCountsHook).
val_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(type='LongTailAccuracy', topk=(1, 5)),
    # Calibration per shot group and the accuracy under shifted test label
    # distributions (docs/long_tail_eval.md).
    dict(type='LongTailCalibration'),
    dict(type='LabelShiftAccuracy'),
]

# The val loader on the test list.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='ImageNet_LT_test.txt'))
test_evaluator = val_evaluator
