"""etf_plugin: fixed simplex-ETF classifiers, the dot-regression loss,
long-tailed data and neural-collapse metrics for OpenMMLab.

Importing the package (``custom_imports=dict(imports=['etf_plugin'])`` in a
config) registers its components in MMPretrain's registries and does
nothing else. The rest is opt-in:

- the MMDetection adapter: ``custom_imports=dict(imports=['etf_plugin.det'])``
  in an MMDetection config;
- the model zoo for ``mmpretrain.get_model`` / ``list_models``:
  :func:`etf_plugin.apis.register_model_zoo`;
- checkpoint verification, the atomic file backend and the torch >= 2.6
  allow-list for mmengine checkpoints: ``AtomicCheckpointHook`` (every
  config here has it), or
  :func:`etf_plugin.engine.enable_verified_checkpoints` in scripts outside
  a Runner (docs/robustness.md).

The maths is in :mod:`etf_plugin.functional`, imported by name, not
re-exported here.
"""
from .version import __version__
from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
