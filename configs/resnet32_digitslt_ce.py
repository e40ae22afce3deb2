# Baseline for resnet32_digitslt_etf.py: the same network, data and schedule
# with a learnable linear classifier trained by cross-entropy.
_base_ = [
    '_base_/models/resnet32_cifar_linear.py',
    '_base_/datasets/digits_lt.py',
    '_base_/schedules/digits_lt.py',
    '_base_/digits_runtime.py',
]

model = dict(backbone=dict(in_channels=1))
