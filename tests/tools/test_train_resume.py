"""tools/train.py trains and resumes under torch >= 2.6; tools/test.py
evaluates the checkpoint; the ETF buffer and epoch counter survive."""
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import REPO_ROOT
from etf_plugin.functional import simplex_etf

CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')


def run_tool(*args):
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', args[0]), *args[1:]],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_train_resume_and_test(tmp_path):
    work_dir = str(tmp_path)
    short = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=1']
    run_tool('train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
             *short)
    ckpt2 = torch.load(osp.join(work_dir, 'epoch_2.pth'))  # weights_only
    assert ckpt2['meta']['epoch'] == 2

    # a longer schedule than the checkpoint's is refused unless asked for
    log = run_tool('train.py', CONFIG, '--work-dir', work_dir, '--resume',
                   '--cfg-options', 'train_cfg.max_epochs=3',
                   'default_hooks.run_guard.check_resumed_schedule=False')
    assert 'resumed epoch: 2' in log
    ckpt3 = torch.load(osp.join(work_dir, 'epoch_3.pth'))
    assert ckpt3['meta']['epoch'] == 3
    etf = ckpt3['state_dict']['head.classifier.etf_vectors']
    assert torch.equal(etf, ckpt2['state_dict']['head.classifier.etf_vectors'])
    assert torch.equal(etf, simplex_etf(10, 64, seed=0))
    # the backbone did train between the two checkpoints
    assert not torch.equal(ckpt3['state_dict']['backbone.stem.0.weight'],
                           ckpt2['state_dict']['backbone.stem.0.weight'])

    out = osp.join(work_dir, 'metrics.pkl')
    run_tool('test.py', CONFIG, osp.join(work_dir, 'epoch_3.pth'),
             '--work-dir', work_dir, '--out', out, '--out-item', 'metrics')
    with open(out, 'rb') as f:
        metrics = pickle.load(f)
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


class CallsPrint:

    def __reduce__(self):
        return (print, ('pwned', ))


class GetsArrayAttribute:
    # getattr is allow-listed only for HistoryBuffer's methods
    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


class GetsPrivateHistoryBufferAttribute:

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize(
    'payload', [CallsPrint, GetsArrayAttribute,
                GetsPrivateHistoryBufferAttribute])
def test_safe_unpickler_still_refuses_code(tmp_path, payload):
    import etf_plugin  # noqa: F401  (allow-lists mmengine's types)

    path = tmp_path / 'evil.pth'
    torch.save({'x': payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)


def test_message_hub_round_trip(tmp_path):
    import etf_plugin  # noqa: F401
    from mmengine.logging import HistoryBuffer

    buffer = HistoryBuffer()
    buffer.update(1.5, count=2)
    path = tmp_path / 'hub.pth'
    torch.save({'hub': {'loss': buffer}, 'scalar': np.float32(3.0)}, path)
    loaded = torch.load(path)  # weights_only=True by default on torch 2.6+
    assert loaded['hub']['loss'].mean() == 0.75  # 1.5 over a count of 2
    assert loaded['hub']['loss'].statistics('current') == 1.5
    assert loaded['scalar'] == np.float32(3.0)
