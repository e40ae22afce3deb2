"""A non-finite loss: AMP's loss scaler skips the step and training goes on;
without a scaler NonFiniteLossHook stops the run with a message. The heads
themselves no longer check on the host."""
import math

import pytest
import torch
from mmengine.logging import MessageHub

from etf_plugin.engine.hooks import NonFiniteLossHook
from helpers import load_tool

overflow_check = load_tool('benchmarks/amp_overflow_check.py')


def test_amp_skips_an_overflowing_step_and_trains_on():
    # On a CPU: MMEngine's AmpOptimWrapper with torch.amp.GradScaler('cpu')
    # and bfloat16 autocast (benchmarks/gpu_check.sh runs MMEngine's own
    # fp16 path on a GPU).
    rows, error = overflow_check.run(amp=True, overflow_iter=2, max_iters=4)
    assert error is None and len(rows) == 4
    skipped, after = rows[2], rows[3]
    assert math.isinf(skipped['loss'])
    assert not skipped['updated']
    assert skipped['scale_after'] == skipped['scale_before'] / 2
    assert math.isfinite(after['loss']) and after['updated']
    assert overflow_check.check(rows, error, True, 2, 4) == []


def test_fp32_run_stops_at_the_first_non_finite_loss():
    rows, error = overflow_check.run(amp=False, overflow_iter=2, max_iters=4)
    assert isinstance(error, FloatingPointError)
    assert 'diverged' in str(error) and 'iteration 3' in str(error)
    assert len(rows) == 2  # iterations 0 and 1 finished normally


class FakeRunner:

    def __init__(self, loss_scaler=None):
        self.message_hub = MessageHub(f'non_finite_{id(self)}')
        self.optim_wrapper = type('Wrapper', (), {})()
        if loss_scaler is not None:
            self.optim_wrapper.loss_scaler = loss_scaler
        self.iter = 0

    def step(self, hook, loss):
        self.message_hub.update_scalar('train/loss', loss)
        hook.after_train_iter(self, 0)
        self.iter += 1


def test_scaled_runs_stop_after_max_skipped_steps_in_a_row():
    hook = NonFiniteLossHook(max_skipped_steps=3)
    runner = FakeRunner(torch.amp.GradScaler('cpu'))
    for loss in (1.0, math.nan, math.inf, 0.5, math.nan, math.nan):
        runner.step(hook, loss)  # a finite loss resets the count
    with pytest.raises(FloatingPointError, match='3 iterations in a row'):
        runner.step(hook, math.inf)
    # a disabled scaler (MMEngine's CUDA scaler on a CPU) skips nothing
    runner = FakeRunner(torch.amp.GradScaler('cpu', enabled=False))
    with pytest.raises(FloatingPointError, match='without a loss scaler'):
        runner.step(NonFiniteLossHook(), math.nan)
    with pytest.raises(ValueError, match='max_skipped_steps'):
        NonFiniteLossHook(max_skipped_steps=0)
