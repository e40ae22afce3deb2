"""MMDetection's own entry points on the synthetic-shapes configs (issue
15): the packaged ``browse_dataset.py`` and ``DetInferencer``."""
import os.path as osp
import runpy
import sys

import mmcv
import numpy as np
import torch
from mmengine.config import Config

from helpers import SHAPES_CONFIG as CONFIG
from helpers import mim_tools
from etf_plugin.det import SyntheticShapes

TOOLS = mim_tools('mmdet')


def test_browse_dataset(tmp_path, monkeypatch):
    script = osp.join(TOOLS, 'analysis_tools', 'browse_dataset.py')
    out = tmp_path / 'browse'
    img_dir = tmp_path / 'images'
    monkeypatch.setattr(sys, 'argv', [
        script, CONFIG, '--not-show', '--output-dir', str(out),
        '--cfg-options', 'train_dataloader.dataset.n_max=4',
        'train_dataloader.dataset.imbalance_ratio=0.5',
        f'train_dataloader.dataset.img_dir={img_dir}'
    ])
    runpy.run_path(script, run_name='__main__')

    dataset = SyntheticShapes(n_max=4, imbalance_ratio=0.5,
                              img_dir=str(img_dir))
    drawn = sorted(p.name for p in out.iterdir())
    assert drawn == sorted(
        osp.basename(dataset.get_data_info(i)['img_path'])
        for i in range(len(dataset)))
    # the ground-truth boxes are drawn over the (possibly flipped) image
    info = dataset.get_data_info(0)
    browsed = mmcv.imread(str(out / drawn[0]))
    assert browsed.shape[:2] == info['img'].shape[:2]
    assert not np.array_equal(browsed, info['img'])
    assert not np.array_equal(browsed, info['img'][:, ::-1])


def test_det_inferencer(tmp_path, one_thread):
    from mmdet.apis import DetInferencer
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    # a checkpoint as mmengine's Runner saves it (weights + dataset_meta);
    # an untrained model: the test is about the entry point, not accuracy
    cfg = Config.fromfile(CONFIG)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(tmp_path / 'model.pth')
    torch.save(
        dict(state_dict=model.state_dict(),
             meta=dict(dataset_meta=SyntheticShapes.METAINFO)), checkpoint)

    inferencer = DetInferencer(model=CONFIG, weights=checkpoint,
                               device='cpu', show_progress=False)
    dataset = SyntheticShapes(n_max=2, img_dir=str(tmp_path / 'images'))
    img_path = dataset.get_data_info(0)['img_path']
    out = tmp_path / 'out'
    result = inferencer(img_path, out_dir=str(out), no_save_pred=False)
    prediction, = result['predictions']
    assert len(prediction['labels']) == len(prediction['scores']) == len(
        prediction['bboxes'])
    assert all(0 <= label < 6 for label in prediction['labels'])
    assert all(0 <= score <= 1 for score in prediction['scores'])
    name = osp.splitext(osp.basename(img_path))[0]
    assert (out / 'vis' / osp.basename(img_path)).exists()
    assert (out / 'preds' / f'{name}.json').exists()
    # an in-memory image works too
    result = inferencer(dataset.get_data_info(1)['img'])
    assert len(result['predictions']) == 1
