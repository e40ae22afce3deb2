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
import datetime
import os
import pickle
import subprocess

import numpy as np
import torch
import torch.distributed as torch_dist


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
