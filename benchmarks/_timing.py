"""Timing shared by the benchmarks: every repetition runs every row once, in
an order that changes from one repetition to the next, so that load changes
on a shared machine hit all rows alike; the tables then give each row's
median, its ratio to the floor row's median and the median of the
per-repetition ratios (each against the floor of the same repetition).

The scripts run as ``python benchmarks/<script>.py``, which puts this
directory on ``sys.path``.
"""
import statistics
import time


def rotated(rows, rep):
    """Repetition ``rep`` starts at row ``rep % len(rows)``."""
    shift = rep % len(rows)
    return rows[shift:] + rows[:shift]


def abba(rows, rep):
    """Even repetitions run the rows in order, odd ones reversed (ABBA)."""
    return rows if rep % 2 == 0 else rows[::-1]


def interleaved_times(rows, repeats, order=rotated, sync=None):
    """Seconds of every row in every repetition.

    Args:
        rows (list): ``(name, fn)`` pairs; ``fn()`` is one timed run.
        repeats (int): Repetitions; each runs every row once.
        order (callable): ``order(rows, rep)``, the rows of repetition
            ``rep`` in the order they run. Defaults to :func:`rotated`.
        sync (callable, optional): Called before the clock starts and
            before it stops (``torch.cuda.synchronize`` for a GPU).

    Returns:
        dict: name -> list of seconds, one per repetition.
    """
    times = {name: [] for name, _ in rows}
    for rep in range(repeats):
        for name, fn in order(rows, rep):
            if sync is not None:
                sync()
            start = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def median_ratio(row_times, floor_times):
    """Median of the row over median of the floor."""
    return statistics.median(row_times) / statistics.median(floor_times)


def paired_ratio(row_times, floor_times):
    """Median over repetitions of row / floor of the same repetition."""
    return statistics.median(t / f for t, f in zip(row_times, floor_times))
