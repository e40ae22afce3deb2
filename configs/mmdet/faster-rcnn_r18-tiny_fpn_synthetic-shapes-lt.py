# Baseline of the long-tailed synthetic-shapes benchmark (docs/mmdet.md): a
# tiny Faster R-CNN (ResNet-18 at a quarter of the width, from scratch) with
# mmdet's default RoI classifier, a linear layer + softmax cross-entropy.
# The other rows of the benchmark inherit this config and change only the
# bbox head's type or its loss. 24 epochs take about 2 minutes of CPU time
# on one thread (much longer on a busy machine).
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/default_runtime.py',
    './_base_/synthetic_shapes_lt.py',
]
custom_imports = dict(imports=['etf_plugin.det'], allow_failed_imports=False)
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
        # 2 x 2 samples per RoIAlign bin instead of adaptive: mmcv's CPU
        # RoIAlign (its backward above all) is most of an iteration here
        bbox_roi_extractor=dict(
            roi_layer=dict(sampling_ratio=2), out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=6)),
    # At most three objects per image: 1000 -> 500 proposals (mmcv's CPU NMS
    # is quadratic) and 128 sampled RoIs (25 % positive) instead of 512 are
    # plenty, and make an iteration 0.18 s of CPU instead of 0.30 s.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    # LVIS's score threshold: AP is computed from the whole ranking, so no
    # row loses detections to a calibration cut-off
    test_cfg=dict(rcnn=dict(score_thr=0.0001)))

# num_classes against the training and validation sets' classes (mmdet's
# hook; a dataset with one class more would train with its last class as
# the background)
custom_hooks = [dict(type='NumClassCheckHook')]

# 24 epochs of 25 iterations, LR steps at 16 and 22 (mmdet's 2x shape)
max_epochs = 24
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=12)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=True, milestones=[16, 22], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))

# etf_plugin's CheckpointHook (registered in MMPretrain's scope): atomic,
# checksummed saves, verified loads (also by MMDetection's tools/test.py).
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=25),
    checkpoint=dict(
        type='mmpretrain.AtomicCheckpointHook', interval=12,
        max_keep_ckpts=1))
randomness = dict(seed=0)
