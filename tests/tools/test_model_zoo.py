"""The model zoo through MMPretrain's own APIs: ``list_models``,
``get_model``, ``inference_model``, ``ImageClassificationInferencer`` and
``FeatureExtractor``, on image *files* (8x8 gray PNGs and upscaled 3-channel
ones) as well as arrays; and the model index itself (every config listed,
every listed config and checkpoint present, the shipped checkpoint's
accuracy what the metafile says). Nothing is downloaded."""
import glob
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

import etf_plugin  # noqa: F401
from helpers import MMPRETRAIN_TOOLS, REPO_ROOT, final_metrics, run_tool
from etf_plugin.apis import get_config_path, mim_dir, register_model_zoo

DIGITS_ETF = 'resnet32_digitslt_etf'


@pytest.fixture(autouse=True, scope='module')
def model_zoo():
    """The model zoo, registered as users do (importing etf_plugin does not
    register it: tests/test_import.py)."""
    return register_model_zoo()


def _metafiles():
    index = yaml.safe_load(open(osp.join(REPO_ROOT, 'model-index.yml')))
    return [osp.join(REPO_ROOT, path) for path in index['Import']]


def _models():
    models = []
    for metafile in _metafiles():
        models += yaml.safe_load(open(metafile))['Models']
    return {model['Name']: model for model in models}


def _digits_test_images(n):
    from etf_plugin.datasets import Digits
    dataset = Digits(split='test')
    infos = [dataset.get_data_info(i) for i in range(n)]
    return ([info['img'] for info in infos],
            [info['gt_label'] for info in infos])


@pytest.fixture(scope='module')
def digit_files(tmp_path_factory):
    """The first 10 test digits as 8x8 gray PNGs and as 32x32 3-channel
    PNGs (nearest upscaling), with their arrays and labels."""
    folder = tmp_path_factory.mktemp('digits_png')
    arrays, labels = _digits_test_images(10)
    gray, color = [], []
    for i, array in enumerate(arrays):
        gray.append(str(folder / f'{i}_gray.png'))
        cv2.imwrite(gray[-1], array[..., 0])
        big = np.repeat(np.repeat(array[..., 0], 4, 0), 4, 1)
        color.append(str(folder / f'{i}_color.png'))
        cv2.imwrite(color[-1], np.stack([big] * 3, -1))
    return dict(arrays=arrays, labels=labels, gray=gray, color=color)


@pytest.fixture(scope='module')
def shipped_checkpoint():
    weights = _models()[DIGITS_ETF]['Weights']
    return osp.join(REPO_ROOT, weights)


def test_list_models_knows_our_models():
    from mmpretrain import list_models
    ours = set(_models())
    assert ours <= set(list_models())
    assert DIGITS_ETF in list_models('*etf*')
    assert {n for n in ours if 'etf' in n} == set(list_models('*etf*'))
    assert DIGITS_ETF in list_models(task='Image Classification')
    # a second registration is a no-op, not a name conflict
    assert register_model_zoo() == sorted(ours)
    # relative weights are read from the package, not the current folder
    from mmpretrain.apis import ModelHub
    weights = ModelHub.get(DIGITS_ETF).weights
    assert weights == osp.join(mim_dir(), _models()[DIGITS_ETF]['Weights'])


def test_get_model_by_name_loads_the_shipped_weights(shipped_checkpoint):
    from mmpretrain import get_model
    model = get_model(DIGITS_ETF, pretrained=True)
    state = torch.load(shipped_checkpoint, map_location='cpu')['state_dict']
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert model._dataset_meta['classes'] == tuple(str(i) for i in range(10))


def test_models_without_weights_build_without_download(recwarn):
    from mmpretrain import get_model
    model = get_model('resnet32_cifar10lt_etf', pretrained=True)
    assert type(model.head).__name__ == 'ETFHead'
    assert any('Unable to find pre-defined checkpoint' in str(w.message)
               for w in recwarn)


def test_inference_model_on_image_files(digit_files):
    from mmpretrain import get_model, inference_model
    model = get_model(DIGITS_ETF, pretrained=True)
    # (each call builds an inferencer: a few images only)
    for array, gray, color in list(
            zip(digit_files['arrays'], digit_files['gray'],
                digit_files['color']))[:3]:
        expected = inference_model(model, array)
        for path in (gray, color):
            result = inference_model(model, path)
            assert result['pred_label'] == expected['pred_label']
            np.testing.assert_allclose(result['pred_scores'],
                                       expected['pred_scores'], atol=1e-6)
    # by name, as the model-zoo docs show it
    result = inference_model(DIGITS_ETF, digit_files['gray'][0],
                             pretrained=True)
    assert result['pred_class'] == str(result['pred_label'])


def test_image_classification_inferencer_from_config_and_checkpoint(
        digit_files, shipped_checkpoint):
    from mmpretrain import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        get_config_path(DIGITS_ETF), pretrained=shipped_checkpoint)
    from_arrays = inferencer(digit_files['arrays'])
    for files in (digit_files['gray'], digit_files['color']):
        from_files = inferencer(files, batch_size=4)
        assert [r['pred_label'] for r in from_files] == \
            [r['pred_label'] for r in from_arrays]
    accuracy = np.mean([
        r['pred_label'] == y
        for r, y in zip(from_arrays, digit_files['labels'])
    ])
    assert accuracy >= 0.6, accuracy


def test_feature_extractor_on_image_files(digit_files, shipped_checkpoint):
    from mmpretrain import FeatureExtractor
    extractor = FeatureExtractor(
        get_config_path(DIGITS_ETF), pretrained=shipped_checkpoint)
    expected = extractor(digit_files['arrays'][:4], stage='pre_logits')
    for files in (digit_files['gray'][:4], digit_files['color'][:4]):
        features = extractor(files, stage='pre_logits')
        for got, want in zip(features, expected):
            assert got.shape == (64, )
            torch.testing.assert_close(got, want)


def test_model_index_lists_every_config_and_only_existing_files():
    models = _models()
    configs = {
        osp.relpath(path, REPO_ROOT)
        for path in glob.glob(osp.join(REPO_ROOT, 'configs', '*.py'))
    }
    listed = {model['Config'] for model in models.values()}
    assert configs - listed == set(), (
        'configs missing from configs/*/metafile.yml (add an entry, or '
        'Metrics: {} if not measured)')
    assert listed - configs == set()
    for name, model in models.items():
        assert name == osp.splitext(osp.basename(model['Config']))[0]
        assert osp.isfile(osp.join(REPO_ROOT, model['Config']))
        for result in model['Results']:
            assert result['Task'] == 'Image Classification'
        if 'Weights' in model:
            weights = osp.join(REPO_ROOT, model['Weights'])
            assert osp.isfile(weights), weights
            # weights only, small (no optimizer state)
            assert osp.getsize(weights) < 5 * 2**20
            checkpoint = torch.load(weights, map_location='cpu')
            assert set(checkpoint) == {'state_dict', 'meta'}
    for metafile in _metafiles():
        for collection in yaml.safe_load(open(metafile))['Collections']:
            assert osp.isfile(osp.join(REPO_ROOT, collection['README']))


def test_every_listed_config_loads():
    from mmengine.config import Config
    for name, model in _models().items():
        cfg = Config.fromfile(osp.join(mim_dir(), model['Config']))
        assert 'etf_plugin' in cfg.custom_imports['imports'], name


@pytest.mark.slow
def test_shipped_checkpoint_reproduces_the_metafile(tmp_path,
                                                    shipped_checkpoint):
    """MMPretrain's own tools/test.py on the shipped checkpoint measures the
    numbers in the metafile (they come from the training recorded in
    configs/etf/README.md)."""
    out = run_tool([
        sys.executable,
        osp.join(MMPRETRAIN_TOOLS, 'test.py'),
        get_config_path(DIGITS_ETF), shipped_checkpoint, '--work-dir',
        str(tmp_path)
    ], cwd=tmp_path)
    measured = final_metrics(out, 'test')
    metrics = _models()[DIGITS_ETF]['Results'][0]['Metrics']
    keys = {
        'Top 1 Accuracy': 'accuracy/top1',
        'Many-shot Top 1 Accuracy': 'lt/many',
        'Medium-shot Top 1 Accuracy': 'lt/medium',
        'Few-shot Top 1 Accuracy': 'lt/few',
    }
    for name, key in keys.items():
        assert measured[key] == pytest.approx(metrics[name], abs=0.05)


@pytest.mark.slow
def test_every_digits_metafile_entry_is_what_its_config_trains(tmp_path):
    """Each digits-LT row of the model zoo is one training of its config
    with the command in its README; a config changed without re-measuring
    (a new default knob, a new pipeline) fails here. Runs are one thread
    each and bit-reproducible, so two at a time give the same numbers."""
    keys = {
        'Top 1 Accuracy': 'accuracy/top1',
        'Many-shot Top 1 Accuracy': 'lt/many',
        'Medium-shot Top 1 Accuracy': 'lt/medium',
        'Few-shot Top 1 Accuracy': 'lt/few',
    }
    rows = {name: model for name, model in _models().items()
            if name.startswith('resnet32_digitslt_') and model.get('Results')}
    assert 'resnet32_digitslt_crt' in rows and 'resnet32_digitslt_ce' in rows

    def start(name, extra=()):
        return subprocess.Popen(
            [sys.executable, 'tools/train.py', rows[name]['Config'],
             '--work-dir', str(tmp_path / name), *extra],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))

    # cRT's stage 2 starts from the CE run's last checkpoint, so it is queued
    # when CE is done.
    crt_extra = ('--cfg-options',
                 f'load_from={tmp_path / "resnet32_digitslt_ce"}/epoch_60.pth')
    pending = [(name, ()) for name in sorted(
        set(rows) - {'resnet32_digitslt_crt'},
        key=lambda name: name != 'resnet32_digitslt_ce')]
    logs, running = {}, []
    while pending or running:
        if pending and len(running) < 2:
            name, extra = pending.pop(0)
            running.append((name, start(name, extra)))
            continue
        name, process = running.pop(0)
        logs[name] = process.communicate(timeout=900)[0]
        assert process.returncode == 0, f'{name}:\n{logs[name][-3000:]}'
        if name == 'resnet32_digitslt_ce':
            pending.insert(0, ('resnet32_digitslt_crt', crt_extra))
    wrong = []
    for name, model in rows.items():
        measured = final_metrics(logs[name], 'val')
        listed = model['Results'][0]['Metrics']
        for metric, key in keys.items():
            if abs(measured[key] - listed[metric]) > 0.05:
                wrong.append(f'{name}: {metric} listed {listed[metric]}, '
                             f'trained {measured[key]:.2f}')
    assert not wrong, ('metafile numbers that the configs no longer train '
                       '(re-measure and update the metafile and README):\n'
                       + '\n'.join(wrong))
