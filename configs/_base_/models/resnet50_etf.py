# MMPretrain's ResNet-50 with a fixed simplex ETF (1000 classes in the 2048-d
# feature space) instead of the linear classifier, and the authors'
# ImageNet-LT head and loss: BatchNorm1d only (features are NOT normalised),
# DR on the raw dot products with detached feature norms, class-balanced
# lengths and a 0.01 * mean ||h|| penalty. The authors widened the last stage
# to 4096-d; we keep the standard 2048-d ResNet-50.
_base_ = ['mmpretrain::_base_/models/resnet50.py']

model = dict(
    head=dict(
        _delete_=True,
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
