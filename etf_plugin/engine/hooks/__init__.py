from .broadcast_buffers_hook import BroadcastBuffersHook
from .etf_consistency_hook import ETFConsistencyHook
from .neural_collapse_hook import NeuralCollapseHook

__all__ = [
    'NeuralCollapseHook', 'ETFConsistencyHook', 'BroadcastBuffersHook'
]
from .freeze_modules_hook import FreezeModulesHook  # noqa: E402

__all__ += ['FreezeModulesHook']
