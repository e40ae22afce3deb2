# CIFAR-100-LT (imbalance ratio 0.01): ResNet-32 + fixed simplex ETF + DR (BN + L2 neck, class-balanced DR lengths),
# with the released CIFAR recipe of Yang et al. (Mixup alpha 1, 200 epochs).
# Width 32 gives 128-d features, as in their CIFAR-100 runs.
_base_ = [
    '_base_/models/resnet32_cifar_etf.py',
    '_base_/datasets/cifar100_lt.py',
    '_base_/schedules/cifar_lt_200e.py',
    '_base_/default_runtime.py',
]

model = dict(
    backbone=dict(base_channels=32),
    head=dict(num_classes=100, in_channels=128),
    train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)),
)
