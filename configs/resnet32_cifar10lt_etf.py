# CIFAR-10-LT (imbalance ratio 0.01): ResNet-32 + fixed simplex ETF + DR (BN + L2 neck, class-balanced DR lengths),
# with the released CIFAR recipe of Yang et al. (Mixup alpha 1, 200 epochs).
# Width 16 gives 64-d features, as in their CIFAR-10 runs.
_base_ = [
    '_base_/models/resnet32_cifar_etf.py',
    '_base_/datasets/cifar10_lt.py',
    '_base_/schedules/cifar_lt_200e.py',
    '_base_/default_runtime.py',
]

model = dict(
    backbone=dict(base_channels=16),
    head=dict(num_classes=10, in_channels=64),
    train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)),
)
