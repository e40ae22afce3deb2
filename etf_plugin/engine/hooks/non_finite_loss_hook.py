"""``NonFiniteLossHook``: stop a diverged run with a message, from the loss
value MMEngine logs anyway."""
import math
from typing import Optional

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training with a ``FloatingPointError`` once the training loss is
    NaN or infinite.

    The plugin's heads and losses read nothing on the host during a step
    (a check there would stall the GPU every iteration), so a diverged run
    reaches this hook instead. It reads the loss from the message hub, where
    MMEngine's ``RuntimeInfoHook`` has already put it as a Python float after
    every iteration, so the check costs no extra synchronisation.

    - Without a loss scaler (fp32 or bf16 training) the first non-finite
      loss stops the run: its step has already applied non-finite gradients,
      so every later step would be NaN too, and a checkpoint saved after it
      would hold NaN weights.
    - With AMP's dynamic loss scaler (``AmpOptimWrapper``) an overflowing
      step is skipped by the scaler, which lowers its scale and trains on;
      the run stops only after ``max_skipped_steps`` non-finite losses in a
      row.

    Args:
        max_skipped_steps (int): Consecutive non-finite losses tolerated when
            a loss scaler skips them. Defaults to 20.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook has logged the loss

    def __init__(self, max_skipped_steps: int = 20):
        if int(max_skipped_steps) != max_skipped_steps or \
                max_skipped_steps < 1:
            raise ValueError(f'max_skipped_steps must be a positive integer, '
                             f'got {max_skipped_steps!r}.')
        self.max_skipped_steps = int(max_skipped_steps)
        self._non_finite_steps = 0

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if 'train/loss' not in runner.message_hub.log_scalars:
            return
        loss = runner.message_hub.get_scalar('train/loss').current()
        if math.isfinite(loss):
            self._non_finite_steps = 0
            return
        self._non_finite_steps += 1
        scaled = _has_loss_scaler(runner.optim_wrapper)
        if scaled and self._non_finite_steps < self.max_skipped_steps:
            return
        steps = (f'{self._non_finite_steps} iterations in a row'
                 if scaled else 'one iteration, without a loss scaler')
        raise FloatingPointError(
            f'The training loss was {loss} for {steps} (last at iteration '
            f'{runner.iter + 1}): training has diverged. Lower the learning '
            f'rate or add warm-up, clip gradients (optim_wrapper.clip_grad='
            f'dict(max_norm=...)), or train with AMP and its loss scaler '
            f'(--amp), then resume from the last good checkpoint.')


def _has_loss_scaler(optim_wrapper) -> bool:
    """Whether the optimizer wrapper skips steps with non-finite gradients
    (MMEngine's ``AmpOptimWrapper`` with an enabled ``GradScaler``)."""
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is None:
        return False
    is_enabled = getattr(scaler, 'is_enabled', None)
    return is_enabled() if callable(is_enabled) else True
