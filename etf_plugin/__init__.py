"""etf_plugin: fixed simplex-ETF classifiers, the dot-regression loss,
long-tailed data and neural-collapse metrics for OpenMMLab.

Importing the package (``custom_imports=dict(imports=['etf_plugin'])`` in a
config) registers every component in MMPretrain's registries (and in
MMDetection's when it is installed), and changes nothing else in MMEngine or
torch: checkpoint verification, the atomic file backend and the torch >= 2.6
allow-list are switched on by ``AtomicCheckpointHook`` (every config here
has it) or by :func:`etf_plugin.engine.enable_verified_checkpoints` in
scripts outside a Runner. The maths is in
:mod:`etf_plugin.functional`, imported by name, not re-exported here.
"""
import importlib.util
import warnings

from .version import __version__

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from . import apis  # noqa: E402,F401  (model zoo for mmpretrain.get_model)


def _mmdet_importable() -> bool:
    """Whether MMDetection is installed and imports. A broken install (e.g.
    mmdet 3.3 next to mmcv 2.2, which mmdet's version check refuses) only
    warns, so that the MMPretrain components keep working."""
    if importlib.util.find_spec('mmdet') is None:
        return False
    try:
        import mmdet  # noqa: F401
    except (ImportError, AssertionError) as error:
        warnings.warn(f'mmdet is installed but does not import ({error!r}): '
                      f'the MMDetection components of etf_plugin are not '
                      f'registered.')
        return False
    return True


if _mmdet_importable():
    from . import det  # noqa: E402,F401

__all__ = ['__version__']
