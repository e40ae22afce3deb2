from .atomic_checkpoint_hook import AtomicCheckpointHook
from .class_counts_hook import ClassCountsHook
from .cpu_threads_hook import CPUThreadsHook
from .epoch_seed_hook import EpochSeedHook
from .freeze_modules_hook import FreezeModulesHook
from .neural_collapse_hook import NeuralCollapseHook
from .non_finite_loss_hook import NonFiniteLossHook
from .preemption_hook import PreemptionHook
from .rank_consistency_hook import RankConsistencyHook
from .run_guard_hook import RunGuardHook
from .run_summary_hook import RunSummaryHook

__all__ = [
    'AtomicCheckpointHook', 'ClassCountsHook', 'CPUThreadsHook',
    'EpochSeedHook', 'FreezeModulesHook', 'NeuralCollapseHook',
    'NonFiniteLossHook', 'PreemptionHook', 'RankConsistencyHook',
    'RunGuardHook', 'RunSummaryHook'
]
