# Shared runtime of every etf_plugin config, on top of MMPretrain's own.
# `custom_imports` registers the plugin and `default_scope` (from MMPretrain's
# runtime) selects MMPretrain's registries, so MMPretrain's own
# tools/train.py and tools/test.py (and `mim train mmpretrain`) run these
# configs unchanged as well as ours.
_base_ = ['mmpretrain::_base_/default_runtime.py']

custom_imports = dict(imports=['etf_plugin'], allow_failed_imports=False)

# AtomicCheckpointHook: MMEngine's CheckpointHook, but a save killed midway
# never loses the last good checkpoint (temporary file + fsync + rename, old
# checkpoints deleted after the new one is complete) and each checkpoint gets
# a .sha256 sidecar that every load verifies. RunGuardHook: training a new
# run into a work dir with checkpoints is refused, and so is a resume whose
# schedule changed (see docs/robustness.md).
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', max_keep_ckpts=3),
    run_guard=dict(type='RunGuardHook'))

# - ClassCountsHook: the one source of the training samples per class. It
#   reads them from the training set the runner uses (so a command-line
#   change of the training set reaches every consumer), hands them to the
#   logit-adjusted loss and head, LongTailAccuracy and NeuralCollapseHook,
#   and saves them in every checkpoint for testing.
# - EpochSeedHook: every epoch starts from random states given by (seed,
#   epoch), so a resumed run repeats the uninterrupted one exactly.
# - RankConsistencyHook (a no-op in one process): every rank must classify
#   with the same fixed ETF, checked once the checkpoint is loaded; and
#   every rank evaluates rank 0's BatchNorm statistics (MMEngine's
#   SyncBuffersHook, broadcasting instead of averaging), so validation,
#   NeuralCollapseHook and the saved checkpoint agree.
# - PreemptionHook: on SIGTERM or SIGUSR1 (a scheduler's preemption or
#   time-limit warning, scancel) every rank finishes its iteration, the
#   ranks save that iteration and exit with status 75; --resume continues
#   at the next batch, bit-identical to an uninterrupted run.
# - NonFiniteLossHook: stops a diverged run (NaN/Inf loss) with a message; the
#   heads and losses do not check on the host, which would stall the GPU.
#   Under AMP the loss scaler skips an overflowing step and training goes on.
# - RunSummaryHook: the final metrics and where the checkpoint and logs are,
#   in a few lines at the end of the run.
# A config that sets its own custom_hooks replaces this list: append to
# _base_.custom_hooks instead.
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='EpochSeedHook'),
    dict(type='RankConsistencyHook'),
    dict(type='PreemptionHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='RunSummaryHook'),
]

# tools/train.py and tools/test.py of this repo switch to gloo when no GPU is
# visible, so the same configs also run distributed on CPU.
# dist_cfg.timeout (seconds): a collective that waits longer for a rank (a
# frozen or stalled process) fails, and the job ends non-zero instead of
# hanging. 1800 s is PyTorch's default for gloo; set it per run with
# --cfg-options env_cfg.dist_cfg.timeout=SECONDS (docs/robustness.md).
env_cfg = dict(dist_cfg=dict(backend='nccl', timeout=1800))

# TensorBoard scalars and figures when the `tensorboard` extra is installed
# (pip install etf_plugin[tensorboard]); the JSON/PNG backend always.
from importlib.util import find_spec as _find_spec  # noqa: E402

vis_backends = [dict(type='LocalVisBackend')]
if _find_spec('tensorboard') is not None:
    vis_backends.append(dict(type='TensorboardVisBackend'))
# _delete_: no `_scope_` from the mmpretrain:: base, which tools that build
# the visualizer by hand (browse_dataset.py) would pass on as an argument.
visualizer = dict(
    _delete_=True, type='UniversalVisualizer', vis_backends=vis_backends)

randomness = dict(seed=0, deterministic=False)
