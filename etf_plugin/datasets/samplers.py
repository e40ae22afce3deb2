"""Samplers: the class-aware re-sampling baselines (class-balanced and
square-root sampling) and the padding-free subset sampler of the
measurement hooks.

Kang et al. (ICLR 2020, "Decoupling representation and classifier") write
the usual schemes as one family: class ``c`` is drawn with probability
``p_c = n_c^q / sum_j n_j^q`` and then one of its samples uniformly, with
``q = 1`` instance-balanced (what ``DefaultSampler`` does), ``q = 0``
class-balanced and ``q = 1/2`` square-root sampling.

When to use which:

- ``ClassBalancedSampler`` / ``SquareRootSampler`` (here): per-class
  sampling *probabilities*, drawn with replacement; the epoch length stays
  ``len(dataset)``, so schedules written in epochs keep their meaning.
  This is the "RS" / class-aware-sampling baseline of long-tail papers.
- MMEngine's ``ClassBalancedDataset``: a dataset wrapper that *repeats*
  images whose rarest category has frequency below ``oversample_thr``
  (LVIS repeat factor ``max(1, sqrt(t / f_c))``). It only over-samples, leaves
  frequent classes untouched, lengthens the epoch and is meant for
  multi-label detection data. Use it for LVIS-style detection; use these
  samplers for single-label long-tailed classification.
"""
import math
from typing import Iterator, List, Optional, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmpretrain.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from etf_plugin.datasets.utils import read_gt_labels
from etf_plugin.functional.long_tail import class_power_weights


@DATA_SAMPLERS.register_module()
class ClassPowerSampler(Sampler):
    """Draw class ``c`` with probability ``∝ n_c ** power``, then one of its
    samples uniformly, with replacement; distributed-aware.

    Equivalently, sample ``i`` of class ``y_i`` is drawn with probability
    ``∝ n_{y_i} ** (power - 1)``. Every rank draws the same global sequence
    from ``seed + epoch`` and keeps the positions ``rank, rank + world_size,
    ...``, like MMEngine's ``DefaultSampler``, so the shards never overlap
    and ``DistSamplerSeedHook`` (``set_epoch``) gives a new draw every epoch.
    Labels are read once, from annotations only.

    ``ClassBalancedSampler`` and ``SquareRootSampler`` are this sampler with
    a fixed ``power`` (their class attribute), under their own names.

    Args:
        dataset (Sized): A single-label dataset with ``get_gt_labels()`` or
            ``get_cat_ids(idx)``.
        power (float): Exponent ``q``: 0 class-balanced, 0.5 square-root,
            1 instance-balanced. Fixed, and not given, for the named
            samplers.
        num_samples (int, optional): Samples drawn per epoch over all ranks.
            Defaults to None, i.e. ``len(dataset)``.
        seed (int, optional): Random seed, the same on every rank. Defaults to
            None: a seed drawn on rank 0 and broadcast.
    """

    power: Optional[float] = None

    def __init__(self,
                 dataset: Sized,
                 power: Optional[float] = None,
                 num_samples: Optional[int] = None,
                 seed: Optional[int] = None) -> None:
        fixed = type(self).power
        if fixed is not None and power is not None:
            raise ValueError(
                f'{type(self).__name__} samples with power={fixed}; for '
                f'another power use ClassPowerSampler(power=...).')
        if fixed is None and power is None:
            raise ValueError('ClassPowerSampler needs power (0 class-'
                             'balanced, 0.5 square-root, 1 instance-'
                             'balanced).')
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.power = fixed if power is None else power
        labels = read_gt_labels(dataset)
        if len(labels) == 0:
            raise ValueError(f'{type(self).__name__} got an empty dataset.')
        # Torch's multinomial sampler is limited to 2**24 categories.
        if len(labels) > 2**24:
            raise ValueError(
                f'{type(self).__name__} supports up to 2**24 samples, the '
                f'dataset has {len(labels)}.')
        self.sample_weights = torch.from_numpy(
            class_power_weights(labels, self.power))
        total = len(labels) if num_samples is None else int(num_samples)
        if total < 1:
            raise ValueError(f'num_samples must be positive, got {total}.')
        self.num_samples = math.ceil(total / world_size)
        self.total_size = self.num_samples * world_size
        if seed is None:
            seed = sync_random_seed()
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Iterator[int]:
        """Iterate the indices of this rank for the current epoch."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        indices = torch.multinomial(
            self.sample_weights,
            self.total_size,
            replacement=True,
            generator=generator)
        return iter(indices[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        """The number of samples in this rank."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, so that every epoch draws a new sequence.

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch


@DATA_SAMPLERS.register_module()
class ClassBalancedSampler(ClassPowerSampler):
    """Class-balanced re-sampling, ``ClassPowerSampler`` with ``power=0``:
    every class equally likely.

    Not MMEngine's ``ClassBalancedDataset`` (a repeat-factor wrapper); see the
    module docstring for when to use which. Config::

        sampler=dict(type='ClassBalancedSampler')
    """

    power = 0.0


@DATA_SAMPLERS.register_module()
class SquareRootSampler(ClassPowerSampler):
    """Square-root re-sampling, ``ClassPowerSampler`` with ``power=0.5``:
    class ``c`` drawn with probability ``∝ sqrt(n_c)`` (Mahajan et al. 2018;
    Kang et al. 2020). Config::

        sampler=dict(type='SquareRootSampler')
    """

    power = 0.5


class SubsetSampler(Sampler):
    """This rank's share of the whole dataset or a fixed subset, no padding.

    Unlike ``DefaultSampler(round_up=True)`` it repeats no sample, so sums
    reduced over ranks count every sample exactly once.

    Args:
        dataset_size (int): Length of the dataset.
        max_samples (int, optional): Size of the subset, drawn once with
            ``seed`` and identical on every rank. None means all samples.
        seed (int): Seed of the subset. Defaults to 0.
        rank (int, optional): This process's rank. Defaults to the current
            distributed rank.
        world_size (int, optional): Number of ranks. Defaults to the current
            distributed world size.
    """

    def __init__(self,
                 dataset_size: int,
                 max_samples: Optional[int] = None,
                 seed: int = 0,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        indices = torch.arange(dataset_size)
        if max_samples is not None and max_samples < dataset_size:
            generator = torch.Generator().manual_seed(seed)
            chosen = torch.randperm(dataset_size, generator=generator)
            indices = chosen[:max_samples].sort().values
        dist_rank, dist_world_size = get_dist_info()
        rank = dist_rank if rank is None else rank
        world_size = dist_world_size if world_size is None else world_size
        self.indices: List[int] = indices[rank::world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
