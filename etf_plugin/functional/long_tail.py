"""Long-tail maths: the check of per-class counts, per-class target counts,
the subsample that realises them, class-aware re-sampling weights and the
many/medium/few-shot split of classes.

Plain NumPy functions with no dataset, registry or Runner, so the
``LongTailDataset`` wrapper, the samplers, the ``LongTailAccuracy`` metric,
the neural-collapse code and the data tools all share one definition.
"""
from typing import Dict, Optional, Sequence

import numpy as np

LONG_TAIL_PROFILES = ('exp', 'step')


def check_class_counts(counts,
                       num_classes: Optional[int] = None,
                       positive: bool = False,
                       owner: str = 'class_counts') -> np.ndarray:
    """Return per-class sample counts as int64 after checking them: the one
    check of class counts, whoever gives them (a config, a counts file, a
    checkpoint, the training set).

    Args:
        counts (Sequence[int] | np.ndarray | torch.Tensor): Samples per
            class, entry ``k`` for class ``k``.
        num_classes (int, optional): The number of entries they must have.
        positive (bool): Every class needs at least one sample (e.g. for a
            log prior, where ``log(0)`` has no use). Defaults to False.
        owner (str): Who checks, shown first in error messages.

    Returns:
        np.ndarray: The counts, int64, shape ``(K,)``.
    """
    if isinstance(counts, str):
        raise ValueError(f'{owner}: class_counts must be a list of integers, '
                         f'got the string {counts!r}; for a file use '
                         f'counts_file=PATH.')
    if hasattr(counts, 'detach'):  # a torch tensor
        counts = counts.detach().cpu().numpy()
    array = np.asarray(counts)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f'{owner}: the class counts must be a non-empty 1-D '
                         f'list with one count per class, got {counts!r}.')
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f'{owner}: the class counts must be non-negative '
                         f'integers, got {array.tolist()}.')
    if num_classes is not None and len(array) != num_classes:
        raise ValueError(
            f'{owner}: the class counts have {len(array)} entries but the '
            f'model has {num_classes} classes; give one count per class '
            f'(entry k is class k).')
    bad = ~np.isfinite(array) | (array != np.round(array))
    bad = bad | ((array <= 0) if positive else (array < 0))
    if bad.any():
        indices = np.flatnonzero(bad)
        shown = ', '.join(f'class {k} has {array[k]:g}' for k in indices[:10])
        more = f' and {len(indices) - 10} more' if len(indices) > 10 else ''
        need = ('positive integers (a class without samples has no use '
                'here: drop it, or fix the counts)'
                if positive else 'non-negative integers')
        raise ValueError(f'{owner}: the class counts must be {need}; '
                         f'{shown}{more}.')
    return array.astype(np.int64)


def long_tail_counts(
        num_classes: int,
        n_max: int,
        imbalance_ratio: float = 0.01,
        profile: str = 'exp',
        class_order: Optional[Sequence[int]] = None) -> np.ndarray:
    """Target number of samples of every class under a long-tail profile.

    With ``K = num_classes`` and ``r = imbalance_ratio`` (``n_min / n_max``,
    the "imb_factor" of Cao et al. 2019 and Cui et al. 2019; 0.01 is the
    "imbalance ratio 100" setting):

    - ``'exp'``: ``n_i = int(n_max * r ** (i / (K - 1)))``. The ``int``
      truncation follows the reference CIFAR-LT code, so CIFAR-100-LT at
      ``r = 0.01`` keeps 500 ... 5 images, 10,847 in total, and CIFAR-10-LT
      12,406.
    - ``'step'``: the first ``K // 2`` ranks keep ``n_max``, the others get
      ``int(n_max * r)`` (Cao et al. 2019; their code assumes an even ``K``,
      here an odd ``K`` puts the extra class in the tail).

    ``i`` is the rank of a class in the profile. By default rank ``i`` is
    class ``i``; ``class_order[i]`` names the class that takes rank ``i``
    instead (``class_order[0]`` becomes the largest class).

    Args:
        num_classes (int): Number of classes ``K``.
        n_max (int): Count of the largest (rank 0) class.
        imbalance_ratio (float): ``n_min / n_max``, in ``(0, 1]``.
            Defaults to 0.01.
        profile (str): ``'exp'`` or ``'step'``. Defaults to ``'exp'``.
        class_order (Sequence[int], optional): A permutation of
            ``range(num_classes)``; see above. Defaults to None (identity).

    Returns:
        np.ndarray: Target counts indexed by class, int64, shape ``(K,)``.
        Classes may get 0 when ``n_max * imbalance_ratio < 1``; the caller
        decides whether that is allowed.
    """
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f'num_classes must be a positive integer, '
                         f'got {num_classes}.')
    if int(n_max) != n_max or n_max < 1:
        raise ValueError(f'n_max must be a positive integer, got {n_max}.')
    check_imbalance_ratio(imbalance_ratio)
    num_classes, n_max = int(num_classes), int(n_max)
    ranks = np.arange(num_classes)
    if profile == 'exp':
        exponent = ranks / max(num_classes - 1, 1)
        # A Python-float loop, not vectorised powers: this reproduces the
        # reference code's rounding exactly before int() truncates.
        by_rank = [int(n_max * imbalance_ratio**e) for e in exponent.tolist()]
    elif profile == 'step':
        tail = int(n_max * imbalance_ratio)
        by_rank = [n_max if i < num_classes // 2 else tail for i in ranks]
    else:
        raise ValueError(f'Unknown long-tail profile {profile!r}; choose one '
                         f'of {LONG_TAIL_PROFILES} or give explicit counts.')
    by_rank = np.asarray(by_rank, dtype=np.int64)
    order = check_class_order(class_order, num_classes)
    counts = np.empty(num_classes, dtype=np.int64)
    counts[order] = by_rank
    return counts


def check_imbalance_ratio(imbalance_ratio: float) -> None:
    """Raise a ``ValueError`` unless ``0 < imbalance_ratio <= 1``.

    Args:
        imbalance_ratio (float): ``n_min / n_max`` of a long-tail profile.
    """
    if not 0 < imbalance_ratio <= 1:
        raise ValueError(
            f'imbalance_ratio is n_min / n_max and must lie in (0, 1], got '
            f'{imbalance_ratio}. For "imbalance factor 100" pass 0.01.')


def check_class_order(class_order: Optional[Sequence[int]],
                      num_classes: int) -> np.ndarray:
    """Return ``class_order`` as an int64 array, or the identity if None.

    Raises a ``ValueError`` unless it is a permutation of
    ``range(num_classes)``.

    Args:
        class_order (Sequence[int], optional): ``class_order[i]`` is the
            class that takes profile rank ``i``.
        num_classes (int): Number of classes.

    Returns:
        np.ndarray: The permutation, shape ``(num_classes,)``.
    """
    if class_order is None:
        return np.arange(num_classes, dtype=np.int64)
    order = np.asarray(class_order, dtype=np.int64).reshape(-1)
    if not np.array_equal(np.sort(order), np.arange(num_classes)):
        raise ValueError(
            f'class_order must be a permutation of range({num_classes}) '
            f'(class_order[i] is the class that takes rank i), got '
            f'{order.tolist()}.')
    return order


def seeded_class_order(num_classes: int, seed: int) -> np.ndarray:
    """A seeded permutation of the classes, for ``class_order``: which class
    takes each profile rank (rank 0 the largest), so that the tail is not
    always the same classes.

    A pure function of ``(num_classes, seed)`` from a private generator, so
    every process and every rerun gets the same order.

    Args:
        num_classes (int): Number of classes.
        seed (int): Seed of the permutation.

    Returns:
        np.ndarray: ``class_order``, int64, shape ``(num_classes,)``.
    """
    return np.random.default_rng(seed).permutation(num_classes).astype(
        np.int64)


def long_tail_indices(labels: Sequence[int],
                      class_counts: Sequence[int],
                      seed: int = 0) -> np.ndarray:
    """Choose, for every class ``c``, ``class_counts[c]`` samples of it.

    Each class keeps a uniformly random subset (without replacement) of its
    samples; a class with fewer samples than its target keeps all of them.
    The result is a pure function of ``(labels, class_counts, seed)``: a
    private ``np.random.default_rng(seed)`` draws one random permutation of
    all samples, so the global RNG is never touched and every distributed
    rank computes the same subset without communication.

    Cost: one permutation of ``N`` indices, one stable sort of the permuted
    labels cast to the smallest unsigned type that holds every class
    (``uint8``/``uint16`` up to 65,536 classes, which NumPy sorts stably by
    radix sort, ``O(N)``), one gather of the kept positions and a boolean
    mask over ``N`` for the final order (instead of a sort of the kept
    indices): ``O(N)`` time and memory, no Python loop over classes or
    samples. The subset is exactly the one of the plain definition (stable
    sort by label of the permuted samples, first ``class_counts[c]`` of each
    class, sorted), which ``tests/functional/test_long_tail_maths.py`` pins.

    Args:
        labels (Sequence[int]): Class index of every sample, shape ``(N,)``,
            values in ``[0, len(class_counts))``.
        class_counts (Sequence[int]): Target count of every class.
        seed (int): Seed of the subsample. Defaults to 0.

    Returns:
        np.ndarray: Sorted indices into ``labels`` of the kept samples, int64.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64, copy=False)
    targets = np.asarray(class_counts, dtype=np.int64).reshape(-1)
    if (targets < 0).any():
        raise ValueError(f'class_counts must be non-negative, got negative '
                         f'counts for classes {np.flatnonzero(targets < 0)}.')
    if len(labels) and (labels.min() < 0 or labels.max() >= len(targets)):
        raise ValueError(
            f'labels must lie in [0, {len(targets)}) to match class_counts, '
            f'got labels in [{labels.min()}, {labels.max()}].')
    num_labels, num_classes = len(labels), len(targets)
    shuffled = np.random.default_rng(seed).permutation(num_labels)
    # Stable sort keeps the random order inside each class, so the first
    # class_counts[c] entries of class c are a uniform random subset. With
    # 8- or 16-bit keys NumPy's stable sort is a radix sort.
    small = labels.astype(_label_dtype(num_classes))
    by_class = np.argsort(small[shuffled], kind='stable')
    # Class c occupies positions [start_c, start_c + size_c) of by_class;
    # it keeps the first min(size_c, target_c) of them.
    sizes = np.bincount(small, minlength=num_classes).astype(np.int64)
    kept = np.minimum(sizes, targets)
    starts = np.cumsum(sizes) - sizes
    kept_starts = np.cumsum(kept) - kept
    positions = np.arange(int(kept.sum())) + np.repeat(starts - kept_starts,
                                                       kept)
    # Sorted kept indices as a mask over all samples: O(N), no sort.
    mask = np.zeros(num_labels, dtype=bool)
    mask[shuffled[by_class[positions]]] = True
    return np.flatnonzero(mask)


def _label_dtype(num_classes: int) -> type:
    """The smallest integer type that holds every class index: 8 or 16 bits
    make NumPy's stable argsort a radix sort."""
    if num_classes <= 1 << 8:
        return np.uint8
    if num_classes <= 1 << 16:
        return np.uint16
    return np.int64


def class_sizes(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Number of samples of every class (``np.bincount`` with a length
    check).

    Args:
        labels (Sequence[int]): Class index of every sample.
        num_classes (int): Number of classes.

    Returns:
        np.ndarray: Counts indexed by class, int64, shape ``(num_classes,)``.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64, copy=False)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f'labels must lie in [0, {num_classes}), got labels in '
            f'[{labels.min()}, {labels.max()}]. Check num_classes or the '
            f'class list.')
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def class_power_weights(labels: Sequence[int], power: float) -> np.ndarray:
    """Per-sample weights ``n_{y_i} ** (power - 1)``, so that the total weight
    of class ``c`` is ``n_c ** power``.

    The re-sampling family of Kang et al. (ICLR 2020): ``power = 1`` is
    instance-balanced, ``0`` class-balanced, ``0.5`` square-root sampling.

    Args:
        labels (Sequence[int]): Class index of every sample.
        power (float): Exponent ``q`` of the class probabilities.

    Returns:
        np.ndarray: Unnormalised weights, float64, shape ``(len(labels),)``.
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64, copy=False)
    if len(labels) and labels.min() < 0:
        raise ValueError('labels must be non-negative class indices, got '
                         f'{labels.min()}.')
    sizes = np.bincount(labels).astype(np.float64)
    return sizes[labels]**(power - 1.0)


def shot_groups(class_counts: Sequence[int],
                many_thr: float = 100,
                few_thr: float = 20) -> Dict[str, np.ndarray]:
    """Split classes into many-, medium- and few-shot by training-set size.

    The OLTR convention (Liu et al. 2019): many-shot ``n > many_thr``,
    few-shot ``n < few_thr``, medium-shot ``few_thr <= n <= many_thr``
    (so 20-100 images with the defaults). Every class falls in exactly one
    group; a group may be empty.

    Args:
        class_counts (Sequence[int]): Training samples per class, indexed by
            class (a list, NumPy array or tensor).
        many_thr (float): Classes with more samples than this are many-shot.
            Defaults to 100.
        few_thr (float): Classes with fewer samples than this are few-shot.
            Defaults to 20.

    Returns:
        dict[str, np.ndarray]: Keys ``'many'``, ``'medium'``, ``'few'``, each
        the sorted int64 class indices of that group.
    """
    if few_thr > many_thr:
        raise ValueError(f'few_thr ({few_thr}) must not exceed many_thr '
                         f'({many_thr}).')
    if hasattr(class_counts, 'detach'):  # a torch tensor
        class_counts = class_counts.detach().cpu().numpy()
    counts = np.asarray(class_counts).reshape(-1)
    many = counts > many_thr
    few = counts < few_thr
    return dict(
        many=np.flatnonzero(many),
        medium=np.flatnonzero(~many & ~few),
        few=np.flatnonzero(few))
