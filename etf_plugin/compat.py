"""Loading mmengine 0.10.7 checkpoints under torch >= 2.6, in one place.

torch 2.6 made ``torch.load`` default to ``weights_only=True``: a restricted
unpickler that refuses any global not allow-listed. mmengine 0.10.7 calls
``torch.load`` without ``weights_only`` and stores its message hub (a
``HistoryBuffer`` of numpy arrays) and numpy scalars in every checkpoint, so
``--resume`` and ``tools/test.py`` fail with "Unsupported global". Rather than
switch the safe unpickler off, we allow-list exactly what these checkpoints
contain, as ``pickletools`` shows for a saved one:

* numpy's array/scalar reconstruction and dtypes (they build arrays, never
  call code);
* ``HistoryBuffer``, through :class:`_CheckedHistoryBuffer`: its pickled
  state is ``max_length``, ``_log_history``, ``_count_history`` and
  ``statistics_methods``, and ``HistoryBuffer.__setstate__`` *merges* the
  latter into the class-level ``HistoryBuffer._statistics_methods`` (shared
  by every buffer in the process). A crafted checkpoint could map ``'mean'``
  to ``HistoryBuffer.max`` there, or add entries; so the state may hold
  those four keys only, and ``statistics_methods`` only the entries already
  registered, unchanged (``min``, ``max``, ``current``, ``mean`` by default):
  loading never changes class-level state;
* ``getattr``, restricted to ``getattr(HistoryBuffer, name)`` for those four
  statistics (pickle protocol 2 stores ``HistoryBuffer.mean`` that way);
  nothing else, so ``register_statistics``, ``statistics``, ``update`` or
  any attribute of another object cannot be reached.

Importing this module allow-lists nothing:
:func:`allow_mmengine_checkpoint_globals` runs when :func:`etf_plugin.engine.enable_verified_checkpoints` switches the
plugin's checkpoint guarantees on (``AtomicCheckpointHook`` does, before a
Runner loads anything).
"""
import pickle

import numpy as np
import torch

#: The methods an mmengine checkpoint names with getattr: the default
#: statistics of HistoryBuffer (``HistoryBuffer._set_default_statistics``).
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
#: The attributes a pickled HistoryBuffer carries
#: (``HistoryBuffer.__getstate__``).
HISTORY_BUFFER_STATE = frozenset(
    {'max_length', '_log_history', '_count_history', 'statistics_methods'})
_HISTORY_BUFFER = 'mmengine.logging.history_buffer.HistoryBuffer'


def _history_buffer_class():
    from mmengine.logging.history_buffer import HistoryBuffer
    return HistoryBuffer


def _checked_history_buffer_class():
    """:class:`_CheckedHistoryBuffer`, defined on first use (it subclasses
    mmengine's HistoryBuffer, imported lazily)."""
    global _CheckedHistoryBuffer
    if _CheckedHistoryBuffer is not None:
        return _CheckedHistoryBuffer
    HistoryBuffer = _history_buffer_class()

    class CheckedHistoryBuffer(HistoryBuffer):
        """What the safe unpickler builds for a pickled ``HistoryBuffer``:
        it validates the state, then becomes a plain ``HistoryBuffer``."""

        def __setstate__(self, state):
            check_history_buffer_state(state)
            self.__class__ = HistoryBuffer
            HistoryBuffer.__setstate__(self, state)

    _CheckedHistoryBuffer = CheckedHistoryBuffer
    return CheckedHistoryBuffer


_CheckedHistoryBuffer = None


def check_history_buffer_state(state) -> None:
    """Raise ``pickle.UnpicklingError`` unless ``state`` is what
    ``HistoryBuffer.__getstate__`` produces and restoring it changes no
    class-level state.

    Args:
        state: The unpickled state of a ``HistoryBuffer``.
    """
    HistoryBuffer = _history_buffer_class()
    if not isinstance(state, dict) or not set(state) <= HISTORY_BUFFER_STATE:
        extra = sorted(set(state) - HISTORY_BUFFER_STATE) if isinstance(
            state, dict) else type(state).__name__
        raise pickle.UnpicklingError(
            f'Refusing a HistoryBuffer with state {extra!r} while loading a '
            f'checkpoint: only {sorted(HISTORY_BUFFER_STATE)} are allowed.')
    methods = state.get('statistics_methods', {})
    if not isinstance(methods, dict):
        raise pickle.UnpicklingError(
            'Refusing a HistoryBuffer whose statistics_methods is a '
            f'{type(methods).__name__} while loading a checkpoint.')
    registered = dict(HistoryBuffer._statistics_methods)
    for name in HISTORY_BUFFER_STATISTICS:
        registered.setdefault(name, getattr(HistoryBuffer, name))
    for name, method in methods.items():
        if registered.get(name, None) is not method:
            raise pickle.UnpicklingError(
                f'Refusing a HistoryBuffer that sets statistics method '
                f'{name!r} to {method!r} while loading a checkpoint: loading '
                f'would change HistoryBuffer._statistics_methods for the '
                f'whole process. Only the registered methods, unchanged, are '
                f'allowed.')


def mmengine_checkpoint_globals() -> list:
    """The globals an mmengine 0.10.7 checkpoint needs beyond torch's
    defaults: ``HistoryBuffer`` (checked), numpy arrays, scalars and their
    dtypes, and a ``getattr`` for HistoryBuffer's default statistics."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return [
        (_checked_history_buffer_class(), _HISTORY_BUFFER),
        _reconstruct, scalar, np.ndarray, np.dtype,
        *sorted(set(dtype_classes), key=lambda c: c.__name__),
        (history_buffer_getattr, 'builtins.getattr'),
        (history_buffer_getattr, '__builtin__.getattr'),
    ]


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to what mmengine checkpoints use it for:
    ``HistoryBuffer``'s default statistics methods.

    Args:
        obj: Must be the ``HistoryBuffer`` class (or what the safe
            unpickler resolves its name to).
        name (str): One of :data:`HISTORY_BUFFER_STATISTICS`.
    """
    HistoryBuffer = _history_buffer_class()
    if obj not in (HistoryBuffer, _CheckedHistoryBuffer) or \
            name not in HISTORY_BUFFER_STATISTICS:
        raise pickle.UnpicklingError(
            f'Refusing getattr({obj!r}, {name!r}) while loading a '
            f'checkpoint: only HistoryBuffer\'s statistics '
            f'{HISTORY_BUFFER_STATISTICS} are allowed.')
    return getattr(HistoryBuffer, name)


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list :func:`mmengine_checkpoint_globals` for ``torch.load``'s
    safe unpickler (no-op before torch 2.4, which has no allow-list)."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(mmengine_checkpoint_globals())
