"""``RunGuardHook``: a training run neither mixes with another run's
checkpoints in its work dir nor resumes under a schedule other than the one
it was trained with."""
import glob
import os.path as osp
from typing import List

from mmengine.hooks import Hook
from mmengine.optim import _ParamScheduler
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import find_latest_checkpoint
from mmpretrain.registry import HOOKS

from ..checkpoint_io import SIDECAR_SUFFIX

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
class RunGuardHook(Hook):
    """Refuse a training run that would mix with another run, or resume
    under another schedule.

    * ``before_run``: a new (not resumed) training run into a work dir that
      holds checkpoints is refused (:func:`check_work_dir_is_new`). MMEngine
      would train into it anyway: the new run overwrites ``epoch_1.pth``,
      ``epoch_2.pth`` ... one by one, keeps the old run's later checkpoints,
      re-points ``last_checkpoint`` and mixes both runs' logs. In
      ``before_run``, not ``before_train``, so that no other hook's
      ``before_train`` (e.g. ``NeuralCollapseHook`` setting aside an old
      ``nc_metrics.json``) acts on a work dir that is refused; and with
      MMPretrain's own ``tools/train.py`` too (ours checks before the
      Runner dumps its config there). ``Runner.test()``/``val()`` are not
      affected.
    * ``after_load_checkpoint`` of a resume: a config whose parameter
      schedule differs from the checkpoint's, other than in progress, is
      refused (``check_resumed_schedule``). MMEngine restores each
      scheduler's ``end``, ``T_max`` ... from the checkpoint, so a longer
      ``max_epochs`` on resume would silently keep the old schedule and
      freeze the learning rate after its old end. This runs before
      ``Runner.resume`` restores the schedulers.

    Args:
        check_resumed_schedule (bool): Refuse a resume whose freshly built
            parameter schedulers differ from the checkpoint's. Defaults to
            True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_resumed_schedule: bool = True):
        self.check_resumed_schedule = check_resumed_schedule

    def before_run(self, runner) -> None:
        # Runner.train() has built its loop by now; test() and val() leave
        # the config dict there (runner.train_loop would build it).
        if not isinstance(runner._train_loop, BaseLoop):
            return
        check_work_dir_is_new(runner.work_dir,
                              resuming=runner.cfg.get('resume', False))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not (self.check_resumed_schedule and runner.cfg.get('resume')):
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
        source = runner.cfg.get('load_from') or find_latest_checkpoint(
            runner.work_dir)
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
            f'anyway, set default_hooks.run_guard.check_resumed_schedule='
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
