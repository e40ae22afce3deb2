"""``EpochSeedHook``: every training epoch starts from random states that
depend only on the run's seed and the epoch, so a resumed run repeats the
uninterrupted one bit for bit."""
import random
from functools import partial

import numpy as np
import torch
from mmengine.dataset.utils import worker_init_fn
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

# Odd 32-bit multiplier: distinct epochs give far-apart seeds.
_EPOCH_STRIDE = 2654435761


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of ``epoch`` of a run seeded with ``seed`` (on ``rank``).

    Args:
        seed (int): The run's seed (``randomness.seed``).
        epoch (int): The epoch about to start (0-based).
        rank (int): The process's rank; 0 unless ranks should differ.

    Returns:
        int: A seed in ``[0, 2**32)``.
    """
    return (seed + _EPOCH_STRIDE * (epoch + 1) + 7919 * rank) % 2**32


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Re-seed Python's, NumPy's and PyTorch's random generators, and the
    dataloader workers, at the start of every training epoch.

    MMEngine seeds the generators once, when the runner is built, and does
    not save their states in checkpoints. So a run resumed at epoch ``e``
    draws different random numbers (Mixup ratios, dropout masks, the
    workers' augmentations) from the uninterrupted run, and ends with other
    weights. Seeding every epoch from ``(seed, epoch)``
    (:func:`epoch_seed`) makes each epoch's randomness independent of what
    ran before it: an uninterrupted run, a run stopped at any epoch boundary
    and resumed, and one killed mid-epoch and resumed from its last
    checkpoint draw the same numbers.

    The workers of a non-persistent dataloader are started anew every epoch
    and seeded from the same per-epoch seed (as MMEngine's own
    ``worker_init_fn`` does, but no longer with the same seed every epoch,
    which would repeat the augmentations of an epoch in the next).
    Persistent workers keep their generators across epochs, which a resumed
    run cannot restore; the hook warns once and exact resume is then lost
    (``persistent_workers=False`` is the default of our tools and configs).

    Deterministic kernels are a separate matter: set
    ``randomness=dict(seed=..., deterministic=True)`` for bit-identical GPU
    runs. A no-op when ``randomness.seed`` is None.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._warned = False

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        diff_rank = runner.cfg.get('randomness', {}).get(
            'diff_rank_seed', False)
        rank = get_rank() if diff_rank else 0
        seed = epoch_seed(runner.seed, runner.epoch, rank)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # seeds every CUDA device too
        loader = runner.train_dataloader
        if not getattr(loader, 'num_workers', 0):
            return
        if loader.persistent_workers:
            if not self._warned:
                self._warned = True
                runner.logger.warning(
                    'EpochSeedHook: train_dataloader.persistent_workers=True '
                    'keeps the workers\' random generators across epochs, so '
                    'a resumed run will not repeat the augmentations of an '
                    'uninterrupted one. Set persistent_workers=False for '
                    'exact resume.')
            return
        loader.worker_init_fn = partial(
            worker_init_fn,
            num_workers=loader.num_workers,
            rank=get_rank(),
            seed=seed)
