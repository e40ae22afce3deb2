"""Distributed helpers as plain functions (no Runner): the CPU (gloo)
launcher that mmengine 0.10.7 lacks, the clean end of a distributed run,
and checks that ranks agree."""
import datetime
import os
import subprocess
from typing import List

import torch
import torch.distributed as torch_dist
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


def fall_back_to_gloo(cfg) -> None:
    """Make a distributed config run on a machine without GPUs.

    When no GPU is visible: the NCCL backend becomes gloo, and the
    ``MMDistributedDataParallel`` wrapper gets ``device_ids=None`` (mmengine
    passes ``[LOCAL_RANK]``, which PyTorch's DDP refuses for a CPU module).
    Nothing changes when a GPU is visible. Together with
    :func:`init_dist_without_gpu` this lets multi-process runs work, and be
    tested, on CPU.

    ``sync_bn`` cannot work without GPUs (PyTorch's ``SyncBatchNorm`` and
    DDP refuse CPU modules), so it raises a ``ValueError`` here rather than
    deep inside the model wrapper.

    Args:
        cfg (mmengine.Config): The config; ``env_cfg.dist_cfg`` and
            ``model_wrapper_cfg`` are edited.
    """
    if torch.cuda.is_available():
        return
    if cfg.get('sync_bn', None) is not None:
        raise ValueError(
            f'sync_bn={cfg.sync_bn!r} needs GPUs: PyTorch\'s SyncBatchNorm '
            f'only runs on CUDA devices and no GPU is visible. Drop sync_bn '
            f'for CPU runs (--cfg-options sync_bn=None).')
    # Assigned, then read back: Config stores a converted copy of a dict.
    if cfg.get('env_cfg', None) is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg', None) is None:
        cfg.env_cfg.dist_cfg = dict()
    if cfg.env_cfg.dist_cfg.get('backend', 'nccl') == 'nccl':
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('model_wrapper_cfg', None) is None:
        # mmengine's own default wrapper, spelled out so it can be edited.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg = cfg.model_wrapper_cfg
    from mmengine.registry import MODEL_WRAPPERS
    wrapper_type = MODEL_WRAPPERS.get(
        wrapper_cfg.get('type', 'MMDistributedDataParallel'))
    if isinstance(wrapper_type, type) and issubclass(
            wrapper_type, torch.nn.parallel.DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)


def init_dist_without_gpu(launcher: str, dist_cfg: dict) -> None:
    """Initialise the process group on a machine without GPUs.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` before
    ``init_process_group`` for the ``pytorch`` and ``slurm`` launchers, which
    raises "Found no NVIDIA driver" on a CPU machine. This does the same
    set-up without that call; ``Runner.setup_env`` then finds the group
    initialised and skips its own ``init_dist``. A no-op when a GPU is
    visible, when ``launcher`` is ``'none'`` or when the group exists.

    Args:
        launcher (str): ``'none'``, ``'pytorch'`` (torchrun: reads ``RANK``,
            ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or ``'slurm'``
            (reads ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_NODELIST``,
            ``SLURM_LOCALID``; ``MASTER_PORT`` defaults to 29500 and
            ``MASTER_ADDR`` to the first node of the job, as in mmengine).
        dist_cfg (dict): ``env_cfg.dist_cfg``: ``backend`` (after
            :func:`fall_back_to_gloo`, gloo) and an optional ``timeout`` in
            seconds.
    """
    if launcher == 'none' or torch.cuda.is_available() or \
            torch_dist.is_initialized():
        return
    if launcher == 'slurm':
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            os.environ['MASTER_ADDR'] = _first_slurm_node()
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    elif launcher != 'pytorch':
        raise ValueError(
            f'Launcher {launcher!r} needs a GPU with mmengine 0.10.7; on a '
            f'CPU machine use tools/dist_train.sh (pytorch) or slurm.')
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(
        backend=dist_cfg.get('backend', 'gloo'), **kwargs)


def _first_slurm_node() -> str:
    """The first host of ``SLURM_NODELIST``, as ``scontrol`` expands it."""
    node_list = os.environ['SLURM_NODELIST']
    try:
        hosts = subprocess.run(['scontrol', 'show', 'hostname', node_list],
                               capture_output=True,
                               text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as error:
        raise RuntimeError(
            f'Cannot expand SLURM_NODELIST={node_list!r} with scontrol '
            f'({error}); set MASTER_ADDR to the first node.') from error
    return hosts[0]


def destroy_process_group() -> None:
    """End the default process group, if there is one.

    MMEngine's Runner initialises the group but never destroys it, and a
    process that exits with it alive gets PyTorch's warning
    "destroy_process_group() was not called before program exit, which can
    leak resources" (NCCL). tools/train.py and tools/test.py call this after
    a run that ended normally; after a failure they exit at once instead.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
