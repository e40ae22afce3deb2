# Baseline: MMDetection's standard Faster R-CNN R50-FPN on LVIS v1 (boxes
# only), linear RoI classifier + softmax cross-entropy, with the settings of
# mmdet's lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py: repeat-factor
# sampling (ClassBalancedDataset, oversample_thr=1e-3), multi-scale training,
# 1x schedule, 300 detections per image above score 1e-4.
# Data layout and the `lvis` package it needs: docs/mmdet.md.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/lvis_v1_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['etf_plugin.det'], allow_failed_imports=False)
default_scope = 'mmdet'

model = dict(
    roi_head=dict(bbox_head=dict(num_classes=1203)),
    test_cfg=dict(
        rcnn=dict(
            score_thr=0.0001,
            # LVIS allows up to 300
            max_per_img=300)))

# The LVIS base is written for Mask R-CNN: load and evaluate boxes only.
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomChoiceResize',
        scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736),
                (1333, 768), (1333, 800)],
        keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox'])
test_evaluator = val_evaluator

# num_classes against the training and validation sets' classes
custom_hooks = [dict(type='NumClassCheckHook')]
# etf_plugin's CheckpointHook (registered in MMPretrain's scope): atomic,
# checksummed saves, verified loads (also by MMDetection's tools/test.py).
default_hooks = dict(checkpoint=dict(type='mmpretrain.AtomicCheckpointHook'))
