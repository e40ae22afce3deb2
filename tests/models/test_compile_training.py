"""``compile=True`` (MMEngine compiles ``model.train_step``) trains a
CifarResNet + ETFHead + class-balanced DR model with the losses of eager
training, in fp32 on a CPU. (Under AMP, MMEngine 0.10.7's ``autocast`` in
``train_step`` does not trace: see docs/performance.md.)"""
import tempfile

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch._dynamo.utils import counters

from helpers import load_tool

overflow_check = load_tool('benchmarks/amp_overflow_check.py')


class RecordLosses(Hook):

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(
            runner.message_hub.get_scalar('train/loss').current())


def train_two_steps(compile_cfg):
    model = overflow_check.build_model(
        dict(type='DotRegressionLoss', class_balanced=True))
    record = RecordLosses()
    with tempfile.TemporaryDirectory() as work_dir:
        Runner(
            model=model,
            work_dir=work_dir,
            train_dataloader=overflow_check.dataloader(),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
            train_cfg=dict(by_epoch=False, max_iters=2),
            default_hooks=dict(checkpoint=None),
            custom_hooks=[record],
            default_scope='mmpretrain',
            randomness=dict(seed=0),
            log_level='WARNING',
            experiment_name=f'compile_{bool(compile_cfg)}',
            cfg=dict(compile=compile_cfg)).train()
    return record.losses, model


def test_compiled_model_trains_like_eager():
    eager_losses, eager = train_two_steps(False)
    # aot_eager: dynamo's graph capture and AOT autograd without inductor's
    # code generation (minutes on a small CPU); tests/models/
    # test_head_compile.py compiles a head with inductor.
    torch._dynamo.reset()
    counters.clear()
    compiled_losses, compiled = train_two_steps(dict(backend='aot_eager'))
    # MMEngine compiled train_step, and dynamo captured graphs of it
    assert 'train_step' in vars(compiled) and 'train_step' not in vars(eager)
    assert counters['stats']['unique_graphs'] >= 1
    assert len(eager_losses) == len(compiled_losses) == 2
    # Tolerance: float32 round-off of a reordered graph.
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5)
    for (name, a), b in zip(eager.state_dict().items(),
                            compiled.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
