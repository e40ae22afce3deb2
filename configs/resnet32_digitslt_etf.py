# The embedded demo: a small ResNet (depth 8, 16-d features... see below) on
# long-tailed scikit-learn digits, fixed simplex ETF + dot-regression loss.
_base_ = [
    '_base_/models/resnet32_cifar_etf.py',
    '_base_/datasets/digits_lt.py',
    '_base_/schedules/digits_lt.py',
    '_base_/default_runtime.py',
]

model = dict(backbone=dict(in_channels=1))
default_hooks = dict(logger=dict(interval=10))
