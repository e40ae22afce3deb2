"""Checks that distributed ranks agree, as plain functions (no Runner)."""
from typing import List

import torch
from mmengine.dist import (all_gather, broadcast, broadcast_object_list,
                           get_dist_info)


def check_same_on_all_ranks(tensor: torch.Tensor, name: str) -> None:
    """Raise on every rank unless ``tensor`` is bit-identical on all ranks.

    Rank 0's shape and dtype, then its values, are broadcast and compared
    with every rank's own copy byte for byte (so ``-0.0`` differs from
    ``0.0`` and NaNs compare by their bits). Every rank runs the same
    collectives and gathers every rank's verdict, so a mismatch raises the
    same ``ValueError`` on all ranks rather than leaving some of them
    waiting in a later collective. A no-op outside a distributed run.

    Args:
        tensor (torch.Tensor): This rank's copy, on any device, of any dtype.
            It is not modified.
        name (str): What the tensor is, for the error message (e.g.
            ``'head.etf_vectors'``).
    """
    if get_dist_info()[1] == 1:
        return
    own_meta = (tuple(tensor.shape), str(tensor.dtype))
    meta = [own_meta]
    broadcast_object_list(meta, src=0)
    verdicts = _all_gather_floats(float(meta[0] != own_meta))
    ranks = [rank for rank, (differs, ) in enumerate(verdicts) if differs]
    if ranks:
        raise ValueError(
            f'{name} differs between distributed ranks: ranks {ranks} do not '
            f'have rank 0\'s shape {meta[0][0]} and dtype {meta[0][1]}. '
            f'Every rank must build the model from the same config and load '
            f'the same checkpoint.')

    own = tensor.detach().contiguous()
    reference = own.clone()
    broadcast(reference, src=0)
    differs = not torch.equal(_bytes(own), _bytes(reference))
    verdicts = _all_gather_floats(
        float(differs),
        _max_abs_difference(own, reference) if differs else 0.0)
    ranks = {
        rank: max_diff
        for rank, (differs, max_diff) in enumerate(verdicts) if differs
    }
    if ranks:
        shown = ', '.join(f'rank {rank}: {max_diff:.3g}'
                          for rank, max_diff in ranks.items())
        raise ValueError(
            f'{name} is not bit-identical on all distributed ranks; largest '
            f'absolute difference from rank 0 on {shown}. Every rank must '
            f'load the same checkpoint file (look for a stale copy on one '
            f'node). A tensor rebuilt from a seed on each rank can also '
            f'differ between machines whose math libraries differ: save it '
            f'once in a checkpoint and load that on every rank.')


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The raw bytes of a contiguous tensor, flattened."""
    return tensor.reshape(-1).view(torch.uint8)


def _max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest ``|a - b|``; NaN for integer and boolean tensors, whose
    difference is reported as a mismatch only."""
    if not (a.is_floating_point() or a.is_complex()) or a.numel() == 0:
        return float('nan')
    return (a - b).abs().max().item()


def _all_gather_floats(*values: float) -> List[List[float]]:
    """Every rank's ``values``, indexed by rank (the same on every rank)."""
    # mmengine's all_gather moves the CPU tensor to the backend's device.
    gathered = all_gather(torch.tensor(values, dtype=torch.float64))
    return [t.tolist() for t in gathered]
