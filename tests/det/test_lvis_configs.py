"""The LVIS v1 configs (no LVIS data here) build, and the ETF ones detect on
a generated image through their own test pipeline: the 1333 x 800 resize,
the widened 2048-d head, the 1203-class scores, score_thr=0.0001 and NMS."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from helpers import REPO_ROOT
import etf_plugin.det  # noqa: F401  (registers the mmdet components)

CONFIG = osp.join(
    REPO_ROOT, 'configs', 'mmdet',
    'faster-rcnn_r50_fpn_etf-objectness-dr_sample1e-3_ms-1x_lvis-v1.py')


@pytest.mark.slow  # an R50-FPN at 1333 x 800 on one CPU thread
def test_detects_on_a_generated_image(tmp_path, one_thread):
    import mmcv
    from mmdet.registry import MODELS

    cfg = Config.fromfile(CONFIG)
    bbox_head = cfg.model.roi_head.bbox_head
    assert bbox_head.num_classes == 1203
    assert cfg.model.test_cfg.rcnn.score_thr == 0.0001
    cfg.model.backbone.init_cfg = None  # no ImageNet download
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    assert model.roi_head.bbox_head.fc_cls.etf_vectors.shape == (1203, 2048)

    # a generated image, through the config's own test pipeline
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    img[100:200, 150:300] = (40, 40, 230)
    img_path = str(tmp_path / 'generated.png')
    mmcv.imwrite(img, img_path)
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=img_path, img_id=0))
    assert data['inputs'].shape[1:] == (800, 1067)  # the 1333 x 800 resize
    with torch.no_grad():
        result, = model.test_step(
            dict(inputs=[data['inputs']],
                 data_samples=[data['data_samples']]))
    pred = result.pred_instances
    # untrained: p(object) about 1/2 spread over 1203 classes, about 4e-4
    # per class, above score_thr; LVIS's max_per_img keeps 300
    assert 0 < len(pred) <= 300
    assert pred.bboxes.shape == (len(pred), 4)
    assert pred.scores.min() >= 0.0001 and pred.scores.max() <= 1
    assert pred.labels.max() < 1203
    # boxes are mapped back to the 400 x 300 input
    assert pred.bboxes[:, 2].max() <= 400 + 1e-3
