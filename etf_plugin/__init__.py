"""etf_plugin: fixed simplex-ETF classifiers, the dot-regression loss,
long-tailed data and neural-collapse metrics for OpenMMLab.

Importing the package (``custom_imports=dict(imports=['etf_plugin'])`` in a
config) registers every component in MMPretrain's registries (and in
MMDetection's when it is installed), and makes mmengine checkpoints loadable
under torch >= 2.6 (see :mod:`etf_plugin.compat`).
"""
from .compat import allow_mmengine_checkpoint_globals
from .version import __version__

allow_mmengine_checkpoint_globals()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .functional import *  # noqa: E402,F401,F403
