"""PreemptionHook's parts in-process: its arguments, the signal flag, and
dataloader workers that survive a job-wide signal but not their parent's
stop. Whole runs (tools/train.py, tools/dist_train.sh, the Slurm flow) are
in tests/tools/test_exact_resume.py, test_preemption.py and
test_slurm_train.py."""
import multiprocessing
import os
import signal
import subprocess
import time

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from etf_plugin.engine.hooks import PreemptionHook
from etf_plugin.engine.hooks.preemption_hook import (_Epoch,
                                                     _SurviveSignalsInWorker,
                                                     random_states,
                                                     set_random_states)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown signal 'SIGNOPE'"):
        PreemptionHook(signals=('SIGNOPE', ))
    with pytest.raises(ValueError, match='check_interval'):
        PreemptionHook(check_interval=0)


def test_a_signal_sets_the_flag_once_and_handlers_are_restored():
    hook = PreemptionHook(signals=('SIGUSR1', 'SIGUSR2'))
    before = signal.getsignal(signal.SIGUSR1)
    hook.before_train(SimpleNamespace(val_loop=None))
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR1)  # a second one changes nothing
        assert hook.received == signal.SIGUSR2
    finally:
        hook._restore_handlers()
    assert signal.getsignal(signal.SIGUSR1) is before


def test_random_states_round_trip():
    states = random_states()
    first = (torch.rand(3), np.random.rand())
    set_random_states(states)
    again = (torch.rand(3), np.random.rand())
    assert torch.equal(first[0], again[0]) and first[1] == again[1]


class Slow(torch.utils.data.Dataset):

    def __len__(self):
        return 40

    def __getitem__(self, index):
        time.sleep(0.02)
        return index


@pytest.mark.skipif(not hasattr(signal, 'sigwaitinfo'),
                    reason='needs signal.sigwaitinfo (Linux)')
def test_workers_survive_others_signals_but_not_their_parents():
    signals = [signal.SIGTERM]
    loader = DataLoader(
        Slow(), batch_size=2, num_workers=1,
        worker_init_fn=_SurviveSignalsInWorker(signals))
    loop = SimpleNamespace(dataloader=loader)
    batches = iter(_Epoch(loop, signals))  # as the hook hands it over
    assert next(batches).tolist() == [0, 1]
    worker, = multiprocessing.active_children()
    # SIGTERM from another process (a scheduler, torchrun's killpg)
    subprocess.run(['kill', '-TERM', str(worker.pid)], check=True)
    assert [b.tolist() for b in batches][-1] == [38, 39]  # all delivered
    assert loop.dataloader is loader  # given back after the epoch
    # the DataLoader's own stop (terminate() from the parent) still works
    batches = iter(_Epoch(loop, signals))
    next(batches)
    worker, = multiprocessing.active_children()
    worker.terminate()
    worker.join(10)
    assert not worker.is_alive()
