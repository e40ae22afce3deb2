# ResNet-32 (CIFAR, option-A shortcuts) + fixed simplex ETF trained with DR,
# with the authors' released head: BatchNorm1d -> L2-normalise -> ETF, and
# their per-batch class-balanced DR lengths (see DotRegressionLoss).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=32, base_channels=16),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='ETFHead',
        num_classes=10,
        in_channels=64,
        seed=0,
        with_bn=True,
        normalize=True,
        loss=dict(type='DotRegressionLoss', class_balanced=True),
        topk=(1, ),
    ))
