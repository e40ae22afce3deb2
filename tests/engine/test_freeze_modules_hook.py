import os.path as osp
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from torch import nn

from helpers import REPO_ROOT
from etf_plugin.engine.hooks import FreezeModulesHook

CRT_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_crt.py')


class Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))
        self.neck = nn.AdaptiveAvgPool2d(1)
        self.head = MODELS.build(
            dict(type='LinearClsHead', num_classes=3, in_channels=4))


def fake_runner(model, iteration=0):
    return SimpleNamespace(model=model, iter=iteration)


def test_freezes_parameters_and_keeps_eval_mode():
    net = Net()
    hook = FreezeModulesHook(modules=['backbone', 'neck'])
    runner = fake_runner(net)
    hook.before_train(runner)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    net.train()  # what the training loop does at every epoch start
    hook.before_train_iter(runner, batch_idx=0)
    assert not net.backbone.training and not net.backbone[1].training
    assert not net.backbone[2].training  # dropout off too
    assert net.head.training
    # BatchNorm statistics no longer move in a forward pass
    stats = net.backbone[1].running_mean.clone()
    net.backbone(torch.randn(2, 1, 5, 5) + 3)
    assert torch.equal(net.backbone[1].running_mean, stats)


def test_reinitialises_only_at_a_fresh_start():
    net = Net()
    with torch.no_grad():
        net.head.fc.weight.fill_(5.0)
        net.head.fc.bias.fill_(5.0)
    weight = net.head.fc.weight
    hook = FreezeModulesHook(modules=['backbone'], reinit_modules=['head'])
    hook.before_train(fake_runner(net, iteration=7))  # a resumed run
    assert (net.head.fc.weight == 5.0).all()
    hook.before_train(fake_runner(net, iteration=0))
    # LinearClsHead's init_cfg: Normal(std=0.01) weights, zero bias
    assert net.head.fc.weight is weight  # same tensor: optimizer keeps it
    assert net.head.fc.weight.abs().max() < 0.1
    assert 0.003 < net.head.fc.weight.std() < 0.03
    assert torch.equal(net.head.fc.bias, torch.zeros(3))


def test_bad_names():
    hook = FreezeModulesHook(modules=['backbone', 'nek'])
    with pytest.raises(ValueError, match=r"no submodule 'nek'.*'neck'"):
        hook.before_train(fake_runner(Net()))
    with pytest.raises(TypeError, match='lists of module names'):
        FreezeModulesHook(modules='backbone')
    with pytest.raises(ValueError, match='both frozen and re-initialised'):
        FreezeModulesHook(modules=['head'], reinit_modules=['head'])


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_without_find_unused_parameters_is_refused():
    torch_dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{free_port()}',
        rank=0,
        world_size=1)
    try:
        hook = FreezeModulesHook(modules=['backbone'])
        wrapped = MMDistributedDataParallel(Net())
        with pytest.raises(ValueError, match='find_unused_parameters=True'):
            hook.before_train(fake_runner(wrapped))
        wrapped = MMDistributedDataParallel(Net(), find_unused_parameters=True)
        hook.before_train(fake_runner(wrapped))
        assert not any(p.requires_grad
                       for p in wrapped.module.backbone.parameters())
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # a short cRT training through the Runner
def test_crt_keeps_backbone_bit_identical(tmp_path):
    cfg = Config.fromfile(CRT_CONFIG)
    # Stage 1: a checkpoint with random weights and non-trivial BN stats.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        stage1 = MODELS.build(cfg.model)
    stage1.init_weights()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in stage1.state_dict().items():
            if name.endswith('running_mean'):
                tensor.copy_(0.1 *
                             torch.randn(tensor.shape, generator=generator))
            elif name.endswith('running_var'):
                tensor.copy_(0.5 +
                             torch.rand(tensor.shape, generator=generator))
            elif name.startswith('head.'):
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    loaded = {k: v.clone() for k, v in stage1.state_dict().items()}
    torch.save(dict(state_dict=loaded, meta=dict()), tmp_path / 'stage1.pth')

    cfg.load_from = str(tmp_path / 'stage1.pth')
    cfg.work_dir = str(tmp_path / 'crt')
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.sampler.num_samples = 96  # 3 iterations of 32
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    runner = Runner.from_cfg(cfg)
    probe = HeadProbe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()
    assert runner.iter == 3

    trained = runner.model.state_dict()
    after = torch.load(tmp_path / 'crt' / 'epoch_1.pth')['state_dict']
    frozen = [k for k in loaded if not k.startswith('head.')]
    assert any('running_var' in k for k in frozen)
    for key in frozen:  # weights, BN statistics, num_batches_tracked
        assert torch.equal(trained[key], loaded[key]), key
        assert torch.equal(after[key], loaded[key]), key
    # At the start the classifier was re-initialised from scratch (the
    # head's init_cfg: N(0, 0.01) weights, zero bias), not loaded ...
    start_weight, start_bias = probe.weight, probe.bias
    assert 0.003 < start_weight.std() < 0.03
    assert torch.equal(start_bias, torch.zeros(10))
    # ... and then trained.
    assert not torch.equal(after['head.fc.weight'], start_weight)
    assert not torch.equal(after['head.fc.bias'], start_bias)


class HeadProbe(Hook):
    """Records the classifier when training starts, after the other
    hooks' ``before_train``."""

    def before_train(self, runner):
        head = runner.model.head
        self.weight = head.fc.weight.detach().clone()
        self.bias = head.fc.bias.detach().clone()
