"""MMPretrain's own packaged tools/train.py and tools/test.py run our
configs unchanged: custom_imports + default_scope do all the wiring."""
import os.path as osp
import subprocess
import sys

import mmpretrain
import pytest

from conftest import REPO_ROOT

MMPRETRAIN_TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')


@pytest.mark.slow
@pytest.mark.parametrize('config', ['resnet32_digitslt_etf.py'])
def test_mmpretrain_tools_run_our_config(tmp_path, config):
    config = osp.join(REPO_ROOT, 'configs', config)
    train = subprocess.run(
        [sys.executable, osp.join(MMPRETRAIN_TOOLS, 'train.py'), config,
         '--work-dir', str(tmp_path), '--cfg-options',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert train.returncode == 0, train.stderr[-3000:]
    assert 'accuracy/top1' in train.stdout + train.stderr
    test = subprocess.run(
        [sys.executable, osp.join(MMPRETRAIN_TOOLS, 'test.py'), config,
         str(tmp_path / 'epoch_1.pth'), '--work-dir', str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'accuracy/top1' in test.stdout + test.stderr
