"""tools/analysis/nc_eval.py and tools/dist_nc_eval.sh: any head, a
checkpoint trained elsewhere, several stages and splits, and 2 processes
(gloo) equal to one."""
import json
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from helpers import REPO_ROOT, free_port, load_tool, run_tool

ETF_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')
ETF_CHECKPOINT = osp.join(REPO_ROOT, 'checkpoints',
                          'resnet32_digitslt_etf_20261201-4a17b88b.pth')
DIGITS = dict(num_classes=10, mean=[78.1], std=[96.2], to_rgb=False)
# Models with no plugin component, and the plugin's cosine head.
MODELS = {
    'linear': dict(
        type='ImageClassifier',
        data_preprocessor=DIGITS,
        backbone=dict(type='ResNet_CIFAR', depth=18, in_channels=1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=512)),
    'vit': dict(
        type='ImageClassifier',
        data_preprocessor=DIGITS,
        backbone=dict(
            type='VisionTransformer',
            arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                      feedforward_channels=64),
            img_size=8, patch_size=2, in_channels=1),
        head=dict(type='VisionTransformerClsHead', num_classes=10,
                  in_channels=32)),
    'cosine': dict(
        type='ImageClassifier',
        data_preprocessor=DIGITS,
        backbone=dict(type='CifarResNet', depth=8, base_channels=8,
                      in_channels=1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='CosineClsHead', num_classes=10, in_channels=32)),
}


def run_nc_eval(monkeypatch, *args):
    tool = load_tool('tools/analysis/nc_eval.py')
    monkeypatch.setattr(sys, 'argv', ['nc_eval.py', *map(str, args)])
    tool.main()


def model_zoo_checkpoint(model_cfg, path):
    """A randomly initialised model saved as MMPretrain's model zoo does:
    ``state_dict`` and ``meta``, no class counts."""
    import etf_plugin  # noqa: F401
    from mmpretrain.registry import MODELS as REGISTRY
    torch.manual_seed(0)
    model = REGISTRY.build(model_cfg)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(mmpretrain_version='1.2.0')), path)
    return model


@pytest.mark.slow
@pytest.mark.parametrize('name', list(MODELS))
def test_any_head_with_a_foreign_checkpoint(tmp_path, monkeypatch, name):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs',
                                   'resnet32_digitslt_ce.py'))
    cfg.model = MODELS[name]
    config = tmp_path / 'config.py'
    cfg.dump(str(config))
    model = model_zoo_checkpoint(MODELS[name], tmp_path / 'zoo.pth')
    run_nc_eval(monkeypatch, config, tmp_path / 'zoo.pth', '--split',
                'train', 'val', '--max-samples', '150', '--out-dir',
                tmp_path / 'out')
    report = json.loads((tmp_path / 'out' / 'nc_eval.json').read_text())
    settings, results = report['settings'], report['results']
    assert list(results) == ['train', 'val']
    stages = settings['stages']
    num_stages = {'linear': 4, 'vit': 3, 'cosine': 3}[name]
    assert stages == [f'backbone.{i}' for i in range(num_stages)] + (
        [] if name == 'vit' else ['neck']) + ['pre_logits']
    # Counted from the config's long-tailed training set (304 images).
    assert settings['class_counts_from'] == 'training set of the config'
    assert sum(settings['class_counts']) == 304
    for split in results:
        pre_logits = results[split]['pre_logits']
        assert pre_logits['num_samples'] == (150 if split == 'train' else
                                             150)
        # The classifier is found for every head: NC3 and NC4.
        assert {'nc3', 'nc4', 'cdnv', 'cdnv_few', 'nc1_svd'} <= set(
            pre_logits)
        for stage in stages:
            assert 'nc3' not in results[split][stage] or stage == 'pre_logits'
    if name == 'vit':  # class tokens of the encoder layers
        assert results['train']['backbone.1']['dim'] == 32
    if name == 'linear':
        assert results['train']['backbone.3']['dim'] == 512
        # pre_logits of LinearClsHead is the pooled last stage
        assert results['train']['pre_logits']['nc1'] == pytest.approx(
            results['train']['backbone.3']['nc1'], rel=1e-6)
    with open(tmp_path / 'out' / 'nc_eval.png', 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    args = [ETF_CONFIG, ETF_CHECKPOINT, '--split', 'train', 'test',
            '--stages', 'backbone.1', 'pre_logits', '--max-samples', '301']
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(free_port()),
               PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(
                   [REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    one = run_tool([sys.executable,
                    osp.join(REPO_ROOT, 'tools', 'analysis', 'nc_eval.py'),
                    *args, '--out-dir', str(tmp_path / 'one')], env=env,
                   timeout=300)
    two = run_tool(['bash', osp.join(REPO_ROOT, 'tools', 'dist_nc_eval.sh'),
                    ETF_CONFIG, ETF_CHECKPOINT, '2', *args[2:], '--out-dir',
                    str(tmp_path / 'two')], env=env, timeout=300)
    assert '1 process(es)' in one and '2 process(es)' in two
    reports = [json.loads((tmp_path / d / 'nc_eval.json').read_text())
               for d in ('one', 'two')]
    assert reports[1]['settings']['world_size'] == 2
    # The checkpoint carries the run's class counts.
    assert reports[0]['settings']['class_counts_from'] == 'checkpoint'
    results = [r['results'] for r in reports]
    assert results[0].keys() == results[1].keys() == {'train', 'test'}
    for split in results[0]:
        for stage, metrics in results[0][split].items():
            other = results[1][split][stage]
            assert metrics.keys() == other.keys()
            assert metrics['num_samples'] == 301
            for key, value in metrics.items():
                if isinstance(value, float):
                    # Each rank runs its own batches: a convolution over
                    # another batch size may round the float32 features
                    # differently in the last bit (1e-8 on NC1 here).
                    assert other[key] == pytest.approx(
                        value, rel=1e-6, abs=1e-9), (split, stage, key)
                else:
                    assert other[key] == value, (split, stage, key)
