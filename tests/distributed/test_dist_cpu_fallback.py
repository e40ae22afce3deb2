"""etf_plugin.utils.dist's CPU fallback for distributed runs: the config edits
and the process-group set-up that replace mmengine's CUDA-only steps."""
import os

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from etf_plugin.utils.dist import fall_back_to_gloo, init_dist_without_gpu
from ports import free_port

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the fallback only acts without GPUs')


def test_config_edits():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    fall_back_to_gloo(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    # mmengine's default wrapper, minus the device_ids DDP refuses on CPU
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=False,
        device_ids=None)

    cfg = Config(
        dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                find_unused_parameters=True)))
    fall_back_to_gloo(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        find_unused_parameters=True,
        device_ids=None)

    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='mpi'))))
    fall_back_to_gloo(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'mpi'  # a deliberate choice


def test_sync_bn_without_gpus_raises():
    with pytest.raises(ValueError, match="sync_bn='torch' needs GPUs"):
        fall_back_to_gloo(Config(dict(sync_bn='torch')))


def test_nothing_changes_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(sync_bn='torch', env_cfg=dict(dist_cfg=dict())))
    fall_back_to_gloo(cfg)
    assert cfg.to_dict() == dict(sync_bn='torch', env_cfg=dict(dist_cfg={}))
    init_dist_without_gpu('pytorch', {})  # mmengine's init_dist's job
    assert not torch_dist.is_initialized()


def test_init_dist_launchers(monkeypatch, tmp_path):
    init_dist_without_gpu('none', {})
    assert not torch_dist.is_initialized()
    with pytest.raises(ValueError, match="Launcher 'mpi' needs a GPU"):
        init_dist_without_gpu('mpi', {})

    # slurm's variables become torch's, as in mmengine's _init_dist_slurm
    for key in ('MASTER_ADDR', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        # set, then delete: monkeypatch then removes what the call sets
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_LOCALID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'localhost')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    scontrol = tmp_path / 'scontrol'  # expands the node list, like Slurm's
    scontrol.write_text('#!/bin/sh\necho localhost\necho other-node\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    try:
        init_dist_without_gpu('slurm', dict(backend='gloo', timeout=60))
        assert torch_dist.is_initialized()
        assert torch_dist.get_backend() == 'gloo'
        assert (torch_dist.get_rank(), torch_dist.get_world_size()) == (0, 1)
        assert os.environ['MASTER_ADDR'] == 'localhost'  # from scontrol
        assert (os.environ['RANK'], os.environ['WORLD_SIZE'],
                os.environ['LOCAL_RANK']) == ('0', '1', '0')
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
