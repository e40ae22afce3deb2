from .neural_collapse_hook import NeuralCollapseHook

__all__ = ['NeuralCollapseHook']
