# The synthetic-shapes baseline with mmdet's SeesawLoss (Wang et al., CVPR
# 2021; the strongest long-tail loss mmdet ships) on the linear classifier:
# K + 2 outputs (classes, then a two-way objectness), mmdet's defaults
# p=0.8, q=2.0. mmdet's LVIS Seesaw configs also swap the Linear for
# NormedLinear(tempearture=20); not done here, to change one thing only.
_base_ = './faster-rcnn_r18-tiny_fpn_synthetic-shapes-lt.py'

model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(
                _delete_=True,
                type='SeesawLoss',
                p=0.8,
                q=2.0,
                num_classes=6,
                loss_weight=1.0))))
