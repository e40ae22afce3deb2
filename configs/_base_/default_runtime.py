# Shared runtime of every etf_plugin config. `custom_imports` registers the
# plugin and `default_scope` selects MMPretrain's registries, so MMPretrain's
# own tools/train.py and tools/test.py (and `mim train mmpretrain`) run these
# configs unchanged.
custom_imports = dict(imports=['etf_plugin'], allow_failed_imports=False)
default_scope = 'mmpretrain'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# Distributed runs (both hooks are no-ops in a single process): every rank
# must classify with the same fixed ETF, checked once the checkpoint is
# loaded; and every rank evaluates rank 0's BatchNorm statistics, so
# validation, NeuralCollapseHook and the saved checkpoint agree. A config that
# sets its own custom_hooks replaces this list: keep these entries.
custom_hooks = [
    dict(type='ETFConsistencyHook'),
    dict(type='BroadcastBuffersHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py and tools/test.py of this repo switch to gloo when no
    # GPU is visible, so the same configs also run distributed on CPU.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
