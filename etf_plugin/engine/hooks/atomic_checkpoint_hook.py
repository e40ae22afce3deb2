"""``AtomicCheckpointHook``: MMEngine's ``CheckpointHook`` that cannot lose
the last good checkpoint, and whose checkpoints are verified on load."""
import glob
import os
import os.path as osp
from contextlib import contextmanager

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from ..checkpoint_io import (ATOMIC_BACKEND, CorruptCheckpointError,
                             atomic_write, enable_verified_checkpoints,
                             is_temporary, verify_checkpoint_file)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` (same arguments), made safe to kill.

    MMEngine 0.10.7 deletes the oldest checkpoint (and the previous best)
    *before* it writes the new one, and writes the new one in place. Killed
    during a save with ``max_keep_ckpts=1`` a run has no checkpoint left;
    with more it leaves a half-written ``epoch_N.pth`` under its final name.
    This hook:

    * switches on the plugin's verified checkpoints in ``before_run``
      (:func:`~etf_plugin.engine.checkpoint_io.enable_verified_checkpoints`),
      before MMEngine loads or resumes anything;
    * saves through
      :class:`~etf_plugin.engine.checkpoint_io.AtomicLocalBackend`
      (temporary file, ``fsync``, rename, plus a ``.sha256`` sidecar that
      the verified loader checks), when the checkpoint folder is local and
      no ``backend_args`` are given;
    * runs MMEngine's saving with the removals it makes before the save
      held back, and makes them once the new checkpoint is complete;
      rewrites ``last_checkpoint`` atomically and durably after MMEngine's
      in-place write of it;
    * when a run starts, removes the temporary files of a killed save and
      repairs a ``last_checkpoint`` that names no complete checkpoint.
    """

    def __init__(self, *args, **kwargs):
        if 'check_resumed_schedule' in kwargs:
            raise TypeError(
                'check_resumed_schedule is an argument of RunGuardHook now: '
                'set default_hooks.run_guard.check_resumed_schedule instead '
                'of default_hooks.checkpoint.check_resumed_schedule.')
        super().__init__(*args, **kwargs)

    def before_run(self, runner) -> None:
        # MMEngine runs before_run before it loads or resumes a checkpoint
        # (Runner.train/val/test), so every load of this run is verified.
        enable_verified_checkpoints()
        # Runner.train() has built its loop by now; test() and val() leave
        # the config dict there (runner.train_loop would build it).
        if not isinstance(runner._train_loop, BaseLoop):
            return
        out_dir = self.out_dir or runner.work_dir
        if out_dir != runner.work_dir:
            out_dir = osp.join(out_dir,
                               osp.basename(runner.work_dir.rstrip(osp.sep)))
        if self.backend_args is None and self.file_client_args is None:
            if isinstance(get_file_backend(out_dir), LocalBackend):
                self.backend_args = dict(backend=ATOMIC_BACKEND)
            else:
                runner.logger.warning(
                    f'AtomicCheckpointHook: {out_dir} is not a local folder; '
                    f'checkpoints are written by its own backend, not '
                    f'atomically.')
        if self.backend_args == dict(backend=ATOMIC_BACKEND) and \
                is_main_process():
            self._remove_leftovers(runner, out_dir)
            self._repair_last_checkpoint(runner, out_dir)

    @staticmethod
    def _remove_leftovers(runner, folder: str) -> None:
        if not osp.isdir(folder):
            return
        for name in os.listdir(folder):
            # ours only: checkpoints, sidecars, last_checkpoint
            if is_temporary(name) and ('.pth' in name
                                       or name.startswith('.last_checkpoint')):
                os.remove(osp.join(folder, name))
                runner.logger.warning(
                    f'AtomicCheckpointHook: removed {name}, the temporary '
                    f'file of a save that was interrupted.')

    @staticmethod
    def _repair_last_checkpoint(runner, folder: str) -> None:
        """Point an empty or dangling ``last_checkpoint`` (a process killed
        within MMEngine's in-place write of it) at the newest complete
        checkpoint, so that ``--resume`` finds it."""
        path = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(path):
            return
        with open(path) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return
        for candidate in sorted(
                glob.glob(osp.join(folder, '*.pth')), key=osp.getmtime,
                reverse=True):
            try:
                verify_checkpoint_file(candidate)
            except (CorruptCheckpointError, OSError):
                continue
            atomic_write(path, candidate.encode())
            runner.logger.warning(
                f'AtomicCheckpointHook: last_checkpoint named '
                f'{named or "nothing"} (a save was interrupted); it now '
                f'names {candidate}, the newest complete checkpoint.')
            return

    # ------------------------------------------------------------------
    # saving
    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._removals_after_the_save():
            super()._save_checkpoint_with_step(runner, step, meta)
            if is_main_process():
                # MMEngine wrote it in place; make it atomic and durable
                atomic_write(
                    osp.join(runner.work_dir, 'last_checkpoint'),
                    str(self.last_ckpt).encode())

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_after_the_save():
            super()._save_best_checkpoint(runner, metrics)

    @contextmanager
    def _removals_after_the_save(self):
        """Run MMEngine's saving with ``self.file_backend`` recording its
        ``remove``/``rmtree`` calls, and make them after the save completed
        (never if it failed), except of the files just saved."""
        if isinstance(self.file_backend, _DeferredRemoval):
            yield  # nested: the outer call removes
            return
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        self.file_backend = deferred
        try:
            yield
        finally:
            self.file_backend = backend
        keep = {str(self.last_ckpt), str(getattr(self, 'best_ckpt_path', ''))}
        keep.update(
            str(p) for p in getattr(self, 'best_ckpt_path_dict', {}).values())
        for method, path in deferred.pending:
            if str(path) not in keep:
                getattr(backend, method)(path)


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` only record the call."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def remove(self, path) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path) -> None:
        self.pending.append(('rmtree', path))

    def __getattr__(self, name):
        return getattr(self._backend, name)
