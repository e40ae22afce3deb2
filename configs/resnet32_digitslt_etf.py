# The embedded demo: ResNet-32 (64-d features, one input channel) on
# long-tailed scikit-learn digits (304 images, ratio 0.01), fixed simplex ETF
# + dot-regression loss with the authors' BN + L2 neck and class-balanced
# lengths (see README for its time and accuracy).
_base_ = [
    '_base_/models/resnet32_cifar_etf.py',
    '_base_/datasets/digits_lt.py',
    '_base_/schedules/digits_lt.py',
    '_base_/digits_runtime.py',
]

model = dict(backbone=dict(in_channels=1))
