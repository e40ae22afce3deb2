"""``PreemptionHook``: a job told to stop (Slurm's time-limit warning, a
preemption, ``scancel``, a spot-instance notice) saves the iteration it is
at and exits with a status that asks for a requeue; ``--resume`` continues
at the next batch, exactly as the uninterrupted run would have."""
import os
import os.path as osp
import random
import signal
import threading
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, barrier, get_rank,
                           get_world_size, is_main_process)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ..checkpoint_io import remove_checkpoint
from etf_plugin.utils.io import atomic_write

#: Exit status of a run that saved on a stop signal: ``EX_TEMPFAIL`` of
#: sysexits.h ("temporary failure; try again later"). tools/slurm_train.sh
#: requeues the job on it, tools/dist_train.sh exits with it.
PREEMPTED_EXIT_CODE = 75


def random_states() -> dict:
    """This process's Python, NumPy, PyTorch (and CUDA) random states."""
    states = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    """Restore what :func:`random_states` returned."""
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])


class _SurviveSignalsInWorker:
    """A dataloader ``worker_init_fn`` after which the worker survives
    ``signals`` sent by anyone but its parent, then ``worker_init_fn``.

    A scheduler signals every process of the job (Slurm's step, torchrun's
    process group), and PyTorch's workers die on SIGTERM (and SIGUSR1);
    the main process then fails at once ("DataLoader worker ... is killed by
    signal") and the iteration in progress cannot be saved. The DataLoader
    itself stops a worker that does not exit in time with SIGTERM, which
    must still work. So the signals stay blocked in the worker (they are
    blocked while :class:`_Epoch` starts the workers, so that threads a
    library starts at fork inherit that too) and a thread waits for them:
    one from the parent process ends the worker, others are ignored. (Where
    ``signal.sigwaitinfo`` is missing, nothing changes.)
    """

    def __init__(self, signals, worker_init_fn=None):
        self.signals = [int(s) for s in signals]
        self.worker_init_fn = worker_init_fn

    def __call__(self, worker_id: int) -> None:
        if hasattr(signal, 'sigwaitinfo'):
            signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
            threading.Thread(
                target=self._wait, args=(os.getppid(), ), daemon=True).start()
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker_id)

    def _wait(self, parent: int) -> None:
        while True:
            if signal.sigwaitinfo(self.signals).si_pid == parent:
                os._exit(0)


class _Epoch:
    """One epoch of a loop's dataloader, as the hook hands it to the loop.

    Its workers start with the stop signals blocked (see
    :class:`_SurviveSignalsInWorker`). When a run resumes in the middle of
    the epoch, it reads the ``skip`` batches already trained on and drops
    them, so the sampler's order and every worker's random generator are
    where they were (MMEngine's ``IterBasedTrainLoop`` skips the same way),
    restores the main process's random generators as they were saved, and
    yields the remaining batches. Afterwards the loop gets its own
    dataloader back.
    """

    def __init__(self, loop, signals, skip: int = 0,
                 states: Optional[dict] = None):
        self._loop = loop
        self._loader = loop.dataloader
        self._signals = signals
        self._skip = skip
        self._states = states

    def __iter__(self):
        try:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, self._signals)
            try:
                batches = iter(self._loader)  # starts the workers
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for _ in range(self._skip):
                next(batches)
            if self._states is not None:
                set_random_states(self._states)
            yield from batches
        finally:
            self._loop.dataloader = self._loader

    def __len__(self) -> int:
        return len(self._loader) - self._skip

    def __getattr__(self, name):
        return getattr(self._loader, name)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Save the current iteration when the job is told to stop, and resume
    mid-epoch exactly.

    MMEngine does not catch the signals a scheduler sends before it stops a
    job (Slurm: ``SIGTERM`` on preemption or ``scancel``, ``--signal=USR1@T``
    ``T`` seconds before the time limit), so a stopped run loses everything
    since its last epoch checkpoint. With this hook:

    * the signal only sets a flag; every rank finishes the iteration it is
      in, then the ranks agree through an all-reduce of the flag (so a
      signal that reached one rank stops all, at the same iteration);
    * rank 0 writes ``iter_N.pth`` through the checkpoint hook's backend
      (atomic and checksummed with ``AtomicCheckpointHook``) and points
      ``last_checkpoint`` at it; the previous preemption checkpoint is
      deleted afterwards. Each rank's random generators are in it;
    * after a barrier (rank 0's file is complete before any rank ends, so
      ``srun --kill-on-bad-exit`` or torchrun stopping the others cannot cut
      the save short), every rank exits with ``exit_code``;
    * a second signal, e.g. during the save, changes nothing.

    ``--resume`` from such a checkpoint continues the epoch at the next
    batch: the consumed batches are read again and dropped (the data order
    and the workers' augmentations stay those of the uninterrupted run) and
    the random generators are restored, so with ``EpochSeedHook`` and
    deterministic kernels the finished run is bit-identical to an
    uninterrupted one. A signal that arrives during validation is acted on
    at the next training iteration; one after the last iteration lets the
    run finish.

    The dataloader workers survive these signals unless their parent sends
    them, so a signal sent to every process of the job (as Slurm and
    torchrun do) does not kill them under the iteration that is to be
    saved.

    Args:
        signals (Sequence[str]): The signals that stop the run. Defaults to
            ``('SIGTERM', 'SIGUSR1')``.
        exit_code (int): The exit status after the save. Defaults to
            :data:`PREEMPTED_EXIT_CODE` (75).
        check_interval (int): Agree on the flag every this many iterations
            (one all-reduce of one number each time in distributed runs).
            Defaults to 1.
    """

    priority = 'LOWEST'  # after every other hook's after_train_iter

    def __init__(self,
                 signals: Sequence[str] = ('SIGTERM', 'SIGUSR1'),
                 exit_code: int = PREEMPTED_EXIT_CODE,
                 check_interval: int = 1):
        self.signals = []
        for name in signals:
            if not isinstance(getattr(signal, str(name), None),
                              signal.Signals):
                raise ValueError(f'Unknown signal {name!r} in PreemptionHook'
                                 f'(signals=...): use names such as '
                                 f'\'SIGTERM\' or \'SIGUSR1\'.')
            self.signals.append(getattr(signal, name))
        if int(check_interval) != check_interval or check_interval < 1:
            raise ValueError(f'check_interval must be a positive integer, '
                             f'got {check_interval!r}.')
        self.exit_code = int(exit_code)
        self.check_interval = int(check_interval)
        self.received = None
        self._previous = {}
        self._resume_at = None
        self._epoch_first_iter = 0

    # ------------------------------------------------------------------
    # the signal
    def before_train(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning(
                'PreemptionHook: not in the main thread, so no signal '
                'handler: a stopped run resumes from its last checkpoint.')
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._protect_workers(getattr(runner.val_loop, 'dataloader', None))

    def _protect_workers(self, loader) -> None:
        if not getattr(loader, 'num_workers', 0) or isinstance(
                loader.worker_init_fn, _SurviveSignalsInWorker):
            return
        loader.worker_init_fn = _SurviveSignalsInWorker(
            self.signals, loader.worker_init_fn)

    def before_val_epoch(self, runner) -> None:
        if self._previous:  # during training
            runner.val_loop.dataloader = _Epoch(runner.val_loop,
                                                self.signals)

    def after_train(self, runner) -> None:
        self._restore_handlers()
        if not is_main_process():
            return
        last = runner.message_hub.get_info('preemption_ckpt')
        if last and _last_checkpoint(runner) != last:
            remove_checkpoint(last)  # the run got past it

    def _on_signal(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _stop_requested(self, runner) -> bool:
        if (runner.iter + 1) % self.check_interval:
            return False
        if get_world_size() == 1:
            return self.received is not None
        flag = torch.tensor([int(self.received is not None)])
        all_reduce(flag, op='max')
        return bool(flag[0])

    # ------------------------------------------------------------------
    # saving
    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._stop_requested(runner):
            self.save_and_exit(runner)

    def save_and_exit(self, runner) -> None:
        """Save the iteration just finished, wait for rank 0's file, and
        exit with ``exit_code``.

        Args:
            runner (Runner): The runner.
        """
        step = runner.iter + 1
        done = step - self._epoch_first_iter
        states = all_gather_object(random_states())
        checkpoint_hook = next(
            (h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        out_dir = getattr(checkpoint_hook, 'out_dir', None) or \
            runner.work_dir
        path = osp.join(out_dir, f'iter_{step}.pth')
        previous = runner.message_hub.get_info('preemption_ckpt')
        runner.message_hub.update_info('preemption_ckpt', path)
        runner.save_checkpoint(
            out_dir,
            osp.basename(path),
            meta=dict(
                epoch=runner.epoch,
                iter=step,
                mid_epoch=dict(batches_done=done, random_states=states)),
            backend_args=getattr(checkpoint_hook, 'backend_args', None))
        if is_main_process():
            atomic_write(
                osp.join(runner.work_dir, 'last_checkpoint'), path.encode())
            if previous and previous != path:
                remove_checkpoint(previous)
        barrier()
        self._restore_handlers()
        cause = (signal.Signals(self.received).name
                 if self.received is not None else 'a signal to another rank')
        runner.logger.info(
            f'PreemptionHook: {cause} received; saved {path} (epoch '
            f'{runner.epoch + 1}, after batch {done}). Exiting with status '
            f'{self.exit_code}; --resume continues at the next batch.')
        raise SystemExit(self.exit_code)

    # ------------------------------------------------------------------
    # resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta', {})
        if 'mid_epoch' in meta:
            self._resume_at = dict(
                epoch=meta['epoch'], iter=meta['iter'], **meta['mid_epoch'])

    def before_train_epoch(self, runner) -> None:
        # after EpochSeedHook (VERY_HIGH) has set this epoch's worker_init_fn
        self._protect_workers(runner.train_dataloader)
        self._epoch_first_iter = runner.iter
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            return  # IterBasedTrainLoop skips the trained batches itself
        at, self._resume_at = self._resume_at, None
        skip, state = 0, None
        if at is not None and (runner.epoch, runner.iter) == (at['epoch'],
                                                               at['iter']):
            skip, state = self._continue_epoch(runner, at)
        runner.train_loop.dataloader = _Epoch(runner.train_loop,
                                              self.signals, skip, state)

    def _continue_epoch(self, runner, at: dict):
        """The batches to skip and this rank's random states, resuming
        mid-epoch (not for a checkpoint loaded with ``load_from``)."""
        skip = at['batches_done']
        states = at['random_states']
        state = states[get_rank()] if len(states) == get_world_size() \
            else None
        if state is None:
            runner.logger.warning(
                f'PreemptionHook: the checkpoint was saved by '
                f'{len(states)} processes and this run has '
                f'{get_world_size()}: it continues after batch {skip} of '
                f'epoch {runner.epoch + 1}, but not bit-identically.')
        self._epoch_first_iter = runner.iter - skip
        runner.logger.info(
            f'PreemptionHook: continuing epoch {runner.epoch + 1} after '
            f'batch {skip}; reading the {skip} batches already trained on '
            f'again, so that the data order and augmentations of the rest '
            f'are those of an uninterrupted run.')
        return skip, state


def _last_checkpoint(runner) -> Optional[str]:
    path = osp.join(runner.work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip()
