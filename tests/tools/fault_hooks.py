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


@HOOKS.register_module()
class FaultInjectionHook(Hook):
    # after CheckpointHook (VERY_LOW), so an epoch's checkpoint is complete
    priority = 'LOWEST'

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
