"""``AtomicCheckpointHook``: MMEngine's ``CheckpointHook`` that cannot lose
the last good checkpoint, refuses to train into a work dir that holds
another run's checkpoints, and refuses a resume whose schedule changed."""
import glob
import os
import os.path as osp
from typing import List

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.optim import _ParamScheduler
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmpretrain.registry import HOOKS

from ..checkpoint_io import (ATOMIC_BACKEND, SIDECAR_SUFFIX, atomic_write,
                             enable_verified_checkpoints, is_temporary,
                             remove_checkpoint)

# Scheduler state that records progress, not the schedule itself.
_PROGRESS_KEYS = frozenset({
    'last_step', '_global_step', '_last_value', 'base_values', 'verbose',
    '_get_value_called_within_step', 'last_epoch', 'best', 'num_bad_epochs',
    'cooldown_counter', 'rule_worse', 'min_values', 'optimizer'
})


def checkpoints_in(folder: str) -> List[str]:
    """The names of the files in ``folder`` that MMEngine's and our
    checkpoint hooks write (``epoch_*.pth``, ``iter_*.pth``, ``best_*.pth``,
    their ``.sha256`` sidecars, ``last_checkpoint``), sorted."""
    if not osp.isdir(folder):
        return []
    patterns = ('epoch_*.pth', 'iter_*.pth', 'best_*.pth',
                f'*.pth{SIDECAR_SUFFIX}', 'last_checkpoint')
    found = set()
    for pattern in patterns:
        found.update(
            osp.basename(p) for p in glob.glob(osp.join(folder, pattern)))
    return sorted(found)


def check_work_dir_is_new(folder: str, resuming: bool) -> None:
    """Refuse to start a new training run in a folder that holds another
    run's checkpoints.

    MMEngine trains into it anyway: the new run overwrites ``epoch_1.pth``,
    ``epoch_2.pth`` ... one by one, keeps the old run's later checkpoints,
    re-points ``last_checkpoint`` and mixes both runs' logs, so a later
    ``--resume`` or a test of ``epoch_5.pth`` silently uses the wrong run.

    Args:
        folder (str): The work dir (or checkpoint folder).
        resuming (bool): Whether the run resumes (then reusing is the point).

    Raises:
        FileExistsError: With the files found and the two ways out
            (``--resume`` or a new ``--work-dir``).
    """
    if resuming:
        return
    found = checkpoints_in(folder)
    if not found:
        return
    found = [n for n in found if not n.endswith(SIDECAR_SUFFIX)] or found
    shown = ', '.join(found[:6]) + (' ...' if len(found) > 6 else '')
    raise FileExistsError(
        f'The work dir {folder} already holds checkpoints of an earlier run '
        f'({shown}). Training a new run into it would overwrite some of '
        f'them, keep the others and mix both runs\' logs. To continue that '
        f'run, add --resume (its latest checkpoint) or --resume CHECKPOINT; '
        f'to start a new run, pass a new --work-dir (or delete those '
        f'files). Starting from its weights in a new run: --work-dir NEW '
        f'--cfg-options load_from={osp.join(folder, "epoch_N.pth")}.')


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` (same arguments), made safe to kill.

    MMEngine 0.10.7 deletes the oldest checkpoint *before* it writes the new
    one, and writes the new one (and ``last_checkpoint``) in place. Killed
    during a save with ``max_keep_ckpts=1`` a run has no checkpoint left;
    with more it leaves a half-written ``epoch_N.pth`` under its final name.
    This hook:

    * saves through
      :class:`~etf_plugin.engine.checkpoint_io.AtomicLocalBackend`
      (temporary file, ``fsync``, rename, plus a ``.sha256`` sidecar that
      the plugin's checkpoint loader verifies), when the checkpoint folder is
      local and no ``backend_args`` are given;
    * deletes old checkpoints (and the previous best) only after the new one
      is complete, and rewrites ``last_checkpoint`` atomically after it, so
      ``last_checkpoint`` always names a complete checkpoint;
    * removes temporary files a killed save left behind;
    * refuses to start a new run in a folder that holds checkpoints of
      another run (:func:`check_work_dir_is_new`: resume it, or use a new
      work dir), so MMPretrain's own ``tools/train.py`` is covered too;
    * on ``--resume``, refuses a config whose parameter schedule differs from
      the checkpoint's (``check_resumed_schedule``): MMEngine restores the
      schedulers' ``end``, ``T_max`` ... from the checkpoint, so raising
      ``max_epochs`` on resume would silently keep the old schedule and
      freeze the learning rate after its old end.

    Args:
        check_resumed_schedule (bool): Refuse a resume whose freshly built
            parameter schedulers differ from the checkpoint's (other than in
            their progress). Defaults to True.
        **kwargs: ``CheckpointHook``'s arguments.
    """

    def __init__(self, *args, check_resumed_schedule: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.check_resumed_schedule = check_resumed_schedule

    # ------------------------------------------------------------------
    # before training: backend, leftovers, work-dir reuse
    def before_run(self, runner) -> None:
        # MMEngine runs before_run before it loads or resumes a checkpoint
        # (Runner.train/val/test), so every load of this run is verified.
        enable_verified_checkpoints()
        # In before_run, not before_train: other hooks' before_train (e.g.
        # NeuralCollapseHook setting aside an old nc_metrics.json) must not
        # run on a work dir this hook refuses. Runner.test() and val() call
        # before_run too, with no train loop built: nothing to check then.
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
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
        if self.backend_args == dict(backend=ATOMIC_BACKEND):
            check_work_dir_is_new(out_dir, resuming=runner._resume)
            if is_main_process():
                self._remove_leftovers(runner, out_dir)

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

    # ------------------------------------------------------------------
    # saving
    def _save_checkpoint_with_step(self, runner, step, meta):
        """As MMEngine's, but the old checkpoint is deleted after the new
        one is complete, and ``last_checkpoint`` is written atomically."""
        stale = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(
            osp.join(runner.work_dir, 'last_checkpoint'),
            str(self.last_ckpt).encode())
        for old_step in stale:
            if old_step != step:
                self._remove(
                    self.file_backend.join_path(
                        self.out_dir, self.filename_tmpl.format(old_step)))

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            if isinstance(self.file_backend, LocalBackend):
                remove_checkpoint(path)
            else:
                self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)  # deepspeed checkpoints

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """As MMEngine's, but the previous best checkpoint is deleted after
        the new one is saved."""
        backend = self.file_backend
        deferred = _DeferredRemoval(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        keep = {str(self.last_ckpt), str(getattr(self, 'best_ckpt_path', ''))}
        keep.update(
            str(p) for p in getattr(self, 'best_ckpt_path_dict', {}).values())
        for path in deferred.pending:
            if str(path) not in keep:
                self._remove(path)

    # ------------------------------------------------------------------
    # resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not (self.check_resumed_schedule and runner._resume):
            return
        saved = checkpoint.get('param_schedulers')
        built = runner.param_schedulers
        if saved is None or built is None:
            return
        if isinstance(built, dict):
            pairs = [(f'{name}: ', built[name], saved.get(name, []))
                     for name in built]
        else:
            pairs = [('', built, saved)]
        differences = []
        for prefix, schedulers, states in pairs:
            if not all(isinstance(s, _ParamScheduler) for s in schedulers):
                return  # not built: not a training run
            if len(schedulers) != len(states):
                differences.append(
                    f'{prefix}{len(states)} schedulers in the checkpoint, '
                    f'{len(schedulers)} in this config')
                continue
            for scheduler, state in zip(schedulers, states):
                differences += [
                    f'{prefix}{type(scheduler).__name__}.{key}: '
                    f'{state.get(key)!r} in the checkpoint, {value!r} now'
                    for key, value in scheduler.state_dict().items()
                    if key not in _PROGRESS_KEYS and
                    not _same(state.get(key, _MISSING), value)
                ]
        if not differences:
            return
        source = runner._load_from or find_latest_checkpoint(runner.work_dir)
        old_length = _run_length(checkpoint)
        hint = (f'resume with that run\'s schedule ({old_length}), '
                if old_length else 'resume with that run\'s schedule, ')
        raise ValueError(
            f'Cannot resume from {source}: this config\'s parameter schedule '
            f'differs from the one the checkpoint was trained with '
            f'({"; ".join(differences)}). MMEngine would restore the '
            f'checkpoint\'s schedule and silently ignore this config\'s (a '
            f'longer max_epochs would keep the learning rate frozen after '
            f'the old end). Either {hint}or start a new run from its weights '
            f'with a fresh schedule: --work-dir NEW --cfg-options '
            f'load_from={source}. To resume with the checkpoint\'s schedule '
            f'anyway, set default_hooks.checkpoint.check_resumed_schedule='
            f'False.')


_MISSING = object()


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: compare their text
        return repr(a) == repr(b)


def _run_length(checkpoint: dict) -> str:
    """``train_cfg.max_epochs=N`` (or ``max_iters``) of the run that saved
    ``checkpoint``, as --cfg-options text; '' when unknown."""
    text = checkpoint.get('meta', {}).get('cfg')
    if not text:
        return ''
    try:
        from mmengine.config import Config
        train_cfg = Config.fromstring(text, file_format='.py').train_cfg
    except Exception:
        return ''
    for key in ('max_epochs', 'max_iters'):
        if train_cfg.get(key) is not None:
            return f'--cfg-options train_cfg.{key}={train_cfg[key]}'
    return ''


class _DeferredRemoval:
    """A file backend whose ``remove``/``rmtree`` only record the path."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def remove(self, path) -> None:
        self.pending.append(path)

    def rmtree(self, path) -> None:
        self.pending.append(path)

    def __getattr__(self, name):
        return getattr(self._backend, name)
