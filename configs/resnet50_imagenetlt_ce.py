# Baseline for resnet50_imagenetlt_etf.py: the same ResNet-50, data and
# schedule with a learnable linear classifier trained by cross-entropy.
_base_ = [
    '_base_/models/resnet50_linear.py',
    '_base_/datasets/imagenet_lt.py',
    '_base_/schedules/imagenet_lt_90e.py',
    '_base_/default_runtime.py',
]

model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
