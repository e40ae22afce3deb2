"""Training samples per class for the components that need them: the
consumer mixin, and an explicit override read from a list or a file.

At run time the counts come from one place, ``ClassCountsHook``, which reads
them from the training set the runner uses (or from the checkpoint being
tested) and hands them to every component that asks for them
(:class:`ClassCountsConsumer`). A component given ``class_counts=[...]`` or
``counts_file=PATH`` in its config keeps those instead. Models, metrics and
hooks import it from here, so none of them depends on ``etf_plugin.datasets``;
the counts are checked by
:func:`etf_plugin.functional.long_tail.check_class_counts`.
"""
from typing import Optional, Sequence

import numpy as np

from etf_plugin.functional.long_tail import check_class_counts


def read_counts_file(path: str) -> np.ndarray:
    """Read per-class training counts from a text file, one integer per line
    (line ``i`` is class ``i``; blank lines are ignored).

    Args:
        path (str): The counts file.

    Returns:
        np.ndarray: The counts, int64.
    """
    with open(path, encoding='utf-8-sig') as f:
        lines = [(number, line.strip()) for number, line in enumerate(f, 1)]
    counts = []
    for number, line in lines:
        if not line:
            continue
        try:
            counts.append(int(line))
        except ValueError:
            raise ValueError(
                f'{path}:{number} must hold one integer count per line '
                f'(line i = class i), got {line!r}.') from None
    return np.asarray(counts, dtype=np.int64)


def load_class_counts(class_counts: Optional[Sequence[int]] = None,
                      counts_file: Optional[str] = None,
                      owner: str = 'This component') -> Optional[np.ndarray]:
    """The explicit counts of a component's config, or None if it has none.

    Args:
        class_counts (Sequence[int], optional): The counts, entry ``k`` for
            class ``k``.
        counts_file (str, optional): A text file with one integer per line.
        owner (str): Name shown in error messages.

    Returns:
        np.ndarray | None: The checked counts, int64, or None.
    """
    if class_counts is not None and counts_file is not None:
        raise ValueError(f'{owner}: give class_counts=[...] or counts_file='
                         f'PATH, not both.')
    if counts_file is not None:
        return check_class_counts(read_counts_file(counts_file), owner=owner)
    if class_counts is not None:
        return check_class_counts(class_counts, owner=owner)
    return None


class ClassCountsConsumer:
    """Mixin of the components that need the training samples per class.

    ``ClassCountsHook`` calls :meth:`set_class_counts` on every model module,
    metric and hook that has it, with the counts of the training set the
    runner uses (or those saved in the checkpoint under test). Counts given
    in the component's own config (``class_counts`` / ``counts_file``)
    override them. :attr:`class_counts` raises an error naming the fix when
    no counts have arrived.

    Call :meth:`_init_class_counts` in ``__init__``.
    """

    def _init_class_counts(self,
                           class_counts: Optional[Sequence[int]] = None,
                           counts_file: Optional[str] = None) -> None:
        self._explicit_counts = load_class_counts(
            class_counts, counts_file, owner=type(self).__name__)
        self._class_counts = self._explicit_counts
        if self._explicit_counts is not None:
            self._on_class_counts(self._explicit_counts)

    def set_class_counts(self, counts: np.ndarray) -> None:
        """Receive the training counts (ignored when the config gave its
        own).

        Args:
            counts (np.ndarray): Samples per class, int64.
        """
        if self._explicit_counts is not None:
            return
        self._class_counts = check_class_counts(
            counts, owner=type(self).__name__)
        self._on_class_counts(self._class_counts)

    @property
    def has_class_counts(self) -> bool:
        """Whether counts have been given or received."""
        return self._class_counts is not None

    @property
    def class_counts(self) -> np.ndarray:
        """The training samples per class (a copy)."""
        self._require_class_counts()
        return self._class_counts.copy()

    def _require_class_counts(self) -> None:
        """Raise an error naming the fix unless counts have been given or
        received (call it where the state derived from them is needed)."""
        if self._class_counts is None:
            raise RuntimeError(
                f'{type(self).__name__} has no training class counts. Add '
                f"dict(type='ClassCountsHook') to custom_hooks (the runtime "
                f'of every etf_plugin config has it), which reads them from '
                f'the training set or the checkpoint, or give the component '
                f'class_counts=[...] or counts_file=PATH.')

    def _on_class_counts(self, counts: np.ndarray) -> None:
        """Derive state from new counts (e.g. a log prior); a no-op here."""
