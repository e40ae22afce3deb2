"""Test-only hook that injects faults into a real tools/train.py run:
killed at an epoch boundary or mid-epoch, or one distributed rank
frozen. Imported by fault_config.py
(the subprocess gets this folder on PYTHONPATH); each fault acts only when
its environment variable is set, so the config otherwise trains normally.

Environment variables (epochs are 1-based, as in the logs):

* ``ETF_FAULT_EXIT_AFTER_EPOCH=N``: SIGKILL after epoch N's checkpoint is
  saved (an epoch boundary).
* ``ETF_FAULT_KILL_AT=N:I``: SIGKILL after iteration I (1-based) of epoch N.
* ``ETF_FAULT_FREEZE=R:I``: rank R stops itself (SIGSTOP) after global
  iteration I (1-based), after writing the time to ``frozen_at`` in the
  work dir.
* ``ETF_FAULT_SIGNAL_AT=N:I``: before iteration I of epoch N, rank 0 sends
  SIGTERM to its whole process group (as Slurm signals every process of a
  job; the test starts the run in a session of its own).
* ``ETF_FAULT_PAUSE_AT=N:I``: before iteration I of epoch N, rank 0 writes
  ``paused_1`` in the work dir and sleeps ``ETF_FAULT_PAUSE_S`` seconds
  (default 3), so that the test can signal the job during that iteration.
* ``ETF_FAULT_PAUSE_IN_SAVE=N``: the same (``paused_1``, ``paused_2``, ...)
  inside every checkpoint save from epoch N on, after the checkpoint is
  built and before it is written.
"""
import os
import signal
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _env(name):
    value = os.environ.get(name)
    return None if value is None else [int(v) for v in value.split(':')]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _pause(runner, count):
    with open(os.path.join(runner.work_dir, f'paused_{count}'), 'w') as f:
        f.write(repr(time.time()))
    time.sleep(float(os.environ.get('ETF_FAULT_PAUSE_S', 3)))


@HOOKS.register_module()
class FaultInjectionHook(Hook):
    # after CheckpointHook (VERY_LOW), so an epoch's checkpoint is complete
    priority = 'LOWEST'

    def __init__(self):
        self._pauses = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        at = (runner.epoch + 1, batch_idx + 1)
        signal_at = _env('ETF_FAULT_SIGNAL_AT')
        if signal_at and get_rank() == 0 and at == tuple(signal_at):
            os.killpg(os.getpgrp(), signal.SIGTERM)
        pause = _env('ETF_FAULT_PAUSE_AT')
        if pause and get_rank() == 0 and at == tuple(pause):
            self._pauses += 1
            _pause(runner, self._pauses)

    def before_save_checkpoint(self, runner, checkpoint):
        pause = _env('ETF_FAULT_PAUSE_IN_SAVE')
        if pause and checkpoint['meta']['epoch'] >= pause[0]:
            self._pauses += 1
            _pause(runner, self._pauses)

    def after_train_epoch(self, runner):
        stop = _env('ETF_FAULT_EXIT_AFTER_EPOCH')
        if stop and runner.epoch + 1 == stop[0]:
            _die()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        kill = _env('ETF_FAULT_KILL_AT')
        if kill and (runner.epoch + 1, batch_idx + 1) == tuple(kill):
            _die()
        freeze = _env('ETF_FAULT_FREEZE')
        if freeze and get_rank() == freeze[0] and \
                runner.iter + 1 == freeze[1]:
            with open(os.path.join(runner.work_dir, 'frozen_at'), 'w') as f:
                f.write(repr(time.time()))  # for the test's stopwatch
            os.kill(os.getpid(), signal.SIGSTOP)
