from .atomic_checkpoint_hook import AtomicCheckpointHook
from .broadcast_buffers_hook import BroadcastBuffersHook
from .class_counts_hook import ClassCountsHook
from .cpu_threads_hook import CPUThreadsHook
from .epoch_seed_hook import EpochSeedHook
from .etf_consistency_hook import ETFConsistencyHook
from .freeze_modules_hook import FreezeModulesHook
from .neural_collapse_hook import NeuralCollapseHook
from .preemption_hook import PreemptionHook
from .run_summary_hook import RunSummaryHook

__all__ = [
    'AtomicCheckpointHook', 'BroadcastBuffersHook', 'ClassCountsHook',
    'CPUThreadsHook', 'EpochSeedHook', 'ETFConsistencyHook',
    'FreezeModulesHook', 'NeuralCollapseHook', 'PreemptionHook',
    'RunSummaryHook'
]
