# ResNet-32 (CIFAR) + a learnable linear classifier trained with CE: the
# baseline. Unlike the authors' released ResNet-32 baseline, whose "learnable"
# classifier is frozen at its random init, this one is trained.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CifarResNet', depth=32, base_channels=16),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
    ))
