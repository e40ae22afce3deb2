"""Compatibility of mmengine 0.10.7 with torch >= 2.6, in one place.

torch 2.6 made ``torch.load`` default to ``weights_only=True``: a restricted
unpickler that refuses any global not allow-listed. mmengine 0.10.7 calls
``torch.load`` without ``weights_only`` and stores its message hub (a
``HistoryBuffer`` of numpy arrays) and numpy scalars in every checkpoint, so
``--resume`` and ``tools/test.py`` fail with "Unsupported global". Rather than
switch the safe unpickler off, we allow-list exactly the types these
checkpoints contain: a mmengine class that holds plain data, numpy's
array/scalar reconstruction (safe: they build arrays, never call code), and
a ``getattr`` that resolves only ``HistoryBuffer``'s statistics methods
(pickle protocol 2 stores ``HistoryBuffer.mean`` as
``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would let a
checkpoint reach any attribute of any allowed object).
"""
import pickle

import numpy as np
import torch


def mmengine_checkpoint_globals() -> list:
    """The globals an mmengine 0.10.7 checkpoint needs beyond torch's
    defaults: ``HistoryBuffer``, numpy arrays, scalars and their dtypes."""
    from mmengine.logging.history_buffer import HistoryBuffer

    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return [
        HistoryBuffer, _reconstruct, scalar, np.ndarray, np.dtype,
        *sorted(set(dtype_classes), key=lambda c: c.__name__),
        (history_buffer_getattr, 'builtins.getattr'),
        (history_buffer_getattr, '__builtin__.getattr'),
    ]


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the methods of mmengine's ``HistoryBuffer``,
    the only use of ``getattr`` in mmengine checkpoints.

    Args:
        obj: Must be the ``HistoryBuffer`` class.
        name (str): A public method of it, e.g. ``'mean'``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is not HistoryBuffer or name.startswith('_') or not callable(
            getattr(HistoryBuffer, name, None)):
        raise pickle.UnpicklingError(
            f'Refusing getattr({obj!r}, {name!r}) while loading a '
            f'checkpoint: only HistoryBuffer methods are allowed.')
    return getattr(HistoryBuffer, name)


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list :func:`mmengine_checkpoint_globals` for ``torch.load``'s
    safe unpickler (no-op before torch 2.4, which has no allow-list)."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(mmengine_checkpoint_globals())


def fall_back_to_gloo(cfg) -> None:
    """Use the gloo backend when a distributed config asks for NCCL but no
    GPU is visible, so multi-process runs also work (and are tested) on CPU.

    Args:
        cfg (mmengine.Config): The config; ``env_cfg.dist_cfg`` is edited.
    """
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl' and \
            not torch.cuda.is_available():
        dist_cfg['backend'] = 'gloo'
