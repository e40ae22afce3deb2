# A tiny Faster R-CNN (ResNet-18 at a quarter of the width, from scratch)
# with the fixed simplex-ETF RoI classifier and the dot-regression loss, on
# long-tailed synthetic shapes. Trains in minutes on a CPU: the tests train
# it for one epoch with mmdet's own tools/train.py, and it is a template for
# real data.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/synthetic_shapes_lt.py',
]
custom_imports = dict(imports=['etf_plugin'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    backbone=dict(
        depth=18,
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(
        in_channels=32,
        feat_channels=32,
        # 16 to 256 pixel anchors for the 16 to 48 pixel shapes
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(
            in_channels=32,
            fc_out_channels=64,
            num_classes=6,
            # 7 vertices (6 classes + background) in 64 dimensions; the BN
            # gives the ETF signed features after the head's ReLU
            cls_predictor_cfg=dict(type='ETFPredictor', with_bn=True),
            # class_balanced: most sampled RoIs are background; without the
            # per-batch balancing the features collapse onto its vertex
            # (docs/mmdet.md)
            loss_cls=dict(
                _delete_=True,
                type='DotRegressionLoss',
                class_balanced=True,
                logit_scale=10.0,
                loss_weight=1.0))))

# 72 epochs of 8 iterations: 10 to 25 minutes on one busy CPU core
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=72, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=True, milestones=[54], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', interval=12, max_keep_ckpts=2))
randomness = dict(seed=0)
