# Faster R-CNN R50-FPN on LVIS v1 with a fixed simplex-ETF RoI classifier
# and the dot-regression loss; everything else is the baseline's.
#
# 1203 classes + background = 1204 ETF vertices, which span 1203
# dimensions: the baseline's 1024-wide shared FCs are too narrow, so they
# are widened to 2048 (fc_out_channels also feeds the box regressor). The
# BatchNorm (the authors' head) gives the ETF signed features after the
# head's ReLU. class_balanced: most sampled RoIs are background, and on the
# synthetic long-tailed set plain DR collapsed the RoI features onto the
# background vertex (docs/mmdet.md). loss_weight, logit_scale and the width
# are not tuned for LVIS.
_base_ = './faster-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            fc_out_channels=2048,
            cls_predictor_cfg=dict(type='ETFPredictor', seed=0, with_bn=True),
            loss_cls=dict(
                _delete_=True,
                type='DotRegressionLoss',
                class_balanced=True,
                logit_scale=10.0,
                loss_weight=1.0))))
