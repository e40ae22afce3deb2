# Baseline for resnet50_imagenetlt_etf.py: MMPretrain's ResNet-50 with its
# learnable linear classifier trained by cross-entropy, on the same data and
# schedule.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    '_base_/datasets/imagenet_lt.py',
    '_base_/schedules/imagenet_lt_90e.py',
    '_base_/default_runtime.py',
]

model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
