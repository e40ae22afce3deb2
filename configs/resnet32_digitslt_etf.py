# The embedded demo: ResNet-32 (64-d features, one input channel) on
# long-tailed scikit-learn digits (304 images, ratio 0.01), fixed simplex ETF
# + dot-regression loss with the authors' BN + L2 neck and class-balanced
# lengths. About 30 s on a 2-core CPU; top-1 84.8 % with seed 0.
_base_ = [
    '_base_/models/resnet32_cifar_etf.py',
    '_base_/datasets/digits_lt.py',
    '_base_/schedules/digits_lt.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(in_channels=1))
default_hooks = dict(logger=dict(interval=10))
