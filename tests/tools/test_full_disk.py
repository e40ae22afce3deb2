"""A checkpoint that does not fit loses nothing, injected for real into
tools/train.py runs of the digits config (checkpoints of 3.8 MB), with
``max_keep_ckpts=1`` (where MMEngine deletes the old checkpoint first):

* ``file-size limit``: the resumed run under ``RLIMIT_FSIZE`` = 1 MiB
  (``ulimit -f``), so writing the checkpoint fails with ``EFBIG``;
* ``full tmpfs``: the work dir on a 6 MiB tmpfs, full after one checkpoint,
  so the write fails with ``ENOSPC`` (needs root to mount; skipped without).

Epoch 1 is saved, the run is killed (fault_hooks.py), then ``--resume``
must fail at epoch 2's save with an error that names the work dir and the
bytes needed, and leave ``epoch_1.pth`` (verified) and ``last_checkpoint``
as they were, without a temporary file or a sidecar of the failed save.
"""
import os
import os.path as osp
import re
import resource
import signal
import subprocess
import sys

import pytest

from etf_plugin.engine.checkpoint_io import verify_checkpoint_file
from helpers import REPO_ROOT

pytestmark = pytest.mark.slow

HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(HERE, 'fault_config.py')
OPTIONS = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=1'
]
LIMIT = 1 << 20


def train(work_dir, *extra, file_size_limit=None, **fault):
    env = {
        k: v
        for k, v in os.environ.items() if not k.startswith('ETF_FAULT_')
    }
    env.update(
        PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT,
                                    env.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1', **{k: str(v) for k, v in fault.items()})

    def limit():
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (file_size_limit, file_size_limit))

    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), CONFIG,
         '--work-dir', str(work_dir), *extra, '--cfg-options', *OPTIONS],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=600, preexec_fn=limit)
    return result.returncode, result.stdout + result.stderr


@pytest.fixture(params=['file-size limit', 'full tmpfs'])
def work_dir(request, tmp_path):
    """(work dir, RLIMIT_FSIZE for the resumed run or None)."""
    if request.param == 'file-size limit':
        yield tmp_path / 'work', LIMIT
        return
    mount_point = tmp_path / 'tmpfs'
    mount_point.mkdir()
    mounted = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'size=6m', 'tmpfs',
         str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here (needs root): '
                    f'{mounted.stderr.strip()}')
    try:
        yield mount_point / 'work', None
    finally:
        subprocess.run(['umount', str(mount_point)], check=True)


def test_a_checkpoint_that_does_not_fit_loses_nothing(work_dir):
    folder, file_size_limit = work_dir
    rc, log = train(folder, ETF_FAULT_EXIT_AFTER_EPOCH=1)
    assert rc == -signal.SIGKILL, log[-3000:]
    first = folder / 'epoch_1.pth'
    before = {
        n: (folder / n).read_bytes()
        for n in ('epoch_1.pth', 'epoch_1.pth.sha256', 'last_checkpoint')
    }

    rc, log = train(folder, '--resume', file_size_limit=file_size_limit)
    assert rc == 1, log[-3000:]
    assert 'CheckpointSpaceError' in log, log[-3000:]
    assert re.search(
        re.escape(f'Cannot save checkpoint {folder / "epoch_2.pth"}: it ') +
        r'needs 3\.6 MiB \(38\d{5} bytes\) in ' + re.escape(f'{folder} and'),
        log), log[-3000:]
    assert 'continue with --resume' in log
    # nothing lost, nothing left over
    assert {n: (folder / n).read_bytes() for n in before} == before
    verify_checkpoint_file(str(first))
    assert not (folder / 'epoch_2.pth').exists()
    assert not (folder / 'epoch_2.pth.sha256').exists()
    assert not [n for n in os.listdir(folder) if '.tmp-' in n]

    if file_size_limit is not None:  # room again: --resume completes
        rc, log = train(folder, '--resume')
        assert rc == 0, log[-3000:]
        verify_checkpoint_file(str(folder / 'epoch_2.pth'))
        assert not first.exists()  # max_keep_ckpts=1, after the new one
