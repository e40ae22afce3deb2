# Faster R-CNN R50-FPN on LVIS v1 with the fixed simplex-ETF RoI classifier
# (ETFBBoxHead: the ETF over the 1203 object classes plus a learnable
# objectness logit; BCE objectness on every sampled RoI, dot regression on
# the positives); everything else is the baseline's.
#
# 1203 vertices span 1202 dimensions: the baseline's 1024-wide shared FCs
# are too narrow, so they are widened to 2048 (fc_out_channels also feeds
# the box regressor and the objectness logit). A proj_channels layer on the
# 1024-d features would not do: its output spans only 1024 dimensions, so
# not every vertex could be reached. Scores p(object) * softmax(10 cos): a
# RoI on its class's vertex keeps 0.95 of its objectness among 1203 classes,
# and the other classes stay under score_thr=0.0001 (docs/mmdet.md). The
# head's defaults dr_weight=10 and class_balanced=True are the values chosen
# on the synthetic set's held-out split; nothing here has been run on LVIS,
# so they, logit_scale and the width are untuned for it.
_base_ = './faster-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py'

model = dict(
    roi_head=dict(bbox_head=dict(type='ETFBBoxHead', fc_out_channels=2048)))
