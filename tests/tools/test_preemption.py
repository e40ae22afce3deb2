"""A distributed job told to stop saves where it is and resumes exactly:
tools/dist_train.sh with 2 gloo processes on the digits config (3 epochs of
5 iterations per process), SIGTERM sent to the job (the script's process)
by the test, as a scheduler or ``kill`` would.

* mid-epoch: during iteration 3 of epoch 2, the job exits with status 75
  (PREEMPTED_EXIT_CODE) after saving ``iter_8.pth``;
* during a save: the first SIGTERM lands while epoch 1's checkpoint is
  being written, a second one while the preemption checkpoint is: both
  files are complete and the job exits with 75 after iteration 6;

then ``--resume`` (no value: the latest checkpoint) ends with weights
bit-identical to the uninterrupted run's (every tensor) and the same
validation metrics. FaultInjectionHook (fault_hooks.py) pauses rank 0 at
the chosen point and writes ``paused_N`` in the work dir, so the test's
signal arrives there; each test prints the time from the signal to the
job's exit.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from etf_plugin.engine.checkpoint_io import verify_checkpoint_file
from etf_plugin.engine.hooks.preemption_hook import PREEMPTED_EXIT_CODE
from helpers import (REPO_ROOT, assert_same_weights, final_metrics,
                     free_port, last_checkpoint)

pytestmark = pytest.mark.slow

HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(HERE, 'fault_config.py')
OPTIONS = [
    'train_cfg.max_epochs=3', 'train_cfg.val_interval=3',
    'randomness.deterministic=True', 'default_hooks.checkpoint.interval=1'
]
PAUSE_S = 1.0  # how long rank 0 waits at the fault point for the signal
TIMEOUT = 300


def start(work_dir, *extra, **fault):
    """Start tools/dist_train.sh CONFIG 2 in a session of its own."""
    env = {
        k: v
        for k, v in os.environ.items() if not k.startswith('ETF_FAULT_')
        and k not in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_PORT')
    }
    env.update(
        PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT,
                                    env.get('PYTHONPATH', '')]),
        PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1',
        ETF_FAULT_PAUSE_S=str(PAUSE_S),
        **{k: str(v) for k, v in fault.items()})
    output = tempfile.TemporaryFile(mode='w+')
    process = subprocess.Popen(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), CONFIG, '2',
         '--work-dir', str(work_dir), *extra, '--cfg-options', *OPTIONS],
        env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True)
    return process, output


def finish(process, output):
    try:
        process.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    output.seek(0)
    return process.returncode, output.read()


def train(work_dir, *extra):
    rc, log = finish(*start(work_dir, *extra))
    assert rc == 0, log[-4000:]
    return log


def signal_at_pauses(process, output, work_dir, count):
    """Send SIGTERM to the job at each of rank 0's first ``count`` pauses;
    returns (exit status, log, seconds from the first signal to the exit,
    seconds from the end of that pause to the exit)."""
    for n in range(1, count + 1):
        marker = osp.join(str(work_dir), f'paused_{n}')
        deadline = time.monotonic() + TIMEOUT
        while not osp.exists(marker):
            assert process.poll() is None, finish(process, output)[1][-4000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        if n == 1:
            with open(marker) as f:
                pause_end = float(f.read()) + PAUSE_S
            signalled = time.time()
        process.send_signal(signal.SIGTERM)
    rc, log = finish(process, output)
    ended = time.time()
    return rc, log, ended - signalled, ended - pause_end


def assert_same_run(work_dir, reference, log, reference_log):
    assert_same_weights(osp.join(str(work_dir), 'epoch_3.pth'),
                        osp.join(reference, 'epoch_3.pth'))
    assert final_metrics(log, 'val') == final_metrics(reference_log, 'val')


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    log = train(work_dir)
    return str(work_dir), log


def test_sigterm_mid_epoch_saves_that_iteration_and_resumes_exactly(
        uninterrupted, tmp_path):
    process, output = start(tmp_path, ETF_FAULT_PAUSE_AT='2:3')
    rc, log, to_exit, after_pause = signal_at_pauses(process, output,
                                                     tmp_path, 1)
    print(f'\nSIGTERM mid-epoch: exit {to_exit:.2f} s after the signal, '
          f'{after_pause:.2f} s after the iteration could end')
    assert rc == PREEMPTED_EXIT_CODE, log[-4000:]
    # 5 iterations per epoch and process: epoch 2, batch 3 is iteration 8
    assert 'saved ' + str(tmp_path / 'iter_8.pth') in log
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_8.pth')
    verify_checkpoint_file(str(tmp_path / 'iter_8.pth'))
    log = train(tmp_path, '--resume')
    assert 'resumed epoch: 1, iter: 8' in log
    assert_same_run(tmp_path, *uninterrupted, log)


def test_sigterm_during_saves_corrupts_nothing_and_resumes_exactly(
        uninterrupted, tmp_path):
    process, output = start(tmp_path, ETF_FAULT_PAUSE_IN_SAVE='1')
    rc, log, to_exit, _ = signal_at_pauses(process, output, tmp_path, 2)
    print(f'\nSIGTERM during a save: exit {to_exit:.2f} s after the first '
          f'signal')
    assert rc == PREEMPTED_EXIT_CODE, log[-4000:]
    # the epoch-1 save was completed, then iteration 6 (epoch 2, batch 1)
    # was saved despite the second signal during that save
    for name in ('epoch_1.pth', 'iter_6.pth'):
        verify_checkpoint_file(str(tmp_path / name))
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_6.pth')
    assert not [n for n in os.listdir(tmp_path) if '.tmp-' in n]
    log = train(tmp_path, '--resume')
    assert 'resumed epoch: 1, iter: 6' in log
    assert_same_run(tmp_path, *uninterrupted, log)
