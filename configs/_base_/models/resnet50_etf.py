# ResNet-50 + fixed simplex ETF (1000 classes in the 2048-d feature space)
# with the authors' ImageNet-LT head and loss: BatchNorm1d only (features are
# NOT normalised), DR on the raw dot products with detached feature norms,
# class-balanced lengths and a 0.01 * mean ||h|| penalty. The authors widened
# the last stage to 4096-d; we keep the standard 2048-d ResNet-50.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='ETFHead',
        num_classes=1000,
        in_channels=2048,
        seed=0,
        with_bn=True,
        normalize=False,
        loss=dict(
            type='DotRegressionLoss', class_balanced=True, norm_reg=0.01),
        topk=(1, 5),
    ))
