# The synthetic-shapes baseline with the background as one more ETF vertex
# (ETFPredictor: 7 vertices, 6 classes + background, in the 64-d RoI
# feature) and dot regression of every sampled RoI onto its vertex,
# class-balanced per batch (without it the features collapse onto the
# background vertex, docs/mmdet.md). Kept to reproduce its benchmark row;
# the objectness design (etf-objectness-dr) replaces it.
_base_ = './faster-rcnn_r18-tiny_fpn_synthetic-shapes-lt.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            cls_predictor_cfg=dict(type='ETFPredictor', with_bn=True),
            loss_cls=dict(
                _delete_=True,
                type='DotRegressionLoss',
                class_balanced=True,
                logit_scale=10.0,
                loss_weight=1.0))))
