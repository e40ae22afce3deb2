"""The ``fused`` option of the normalised heads and the DR loss: where their
fused autograd functions run instead of the eager path."""
from typing import Union

import torch

FUSED_CHOICES = ('auto', True, False)


def check_fused(fused: Union[str, bool]) -> Union[str, bool]:
    """Return ``fused`` if it is ``'auto'``, True or False, else raise."""
    if not (fused is True or fused is False or fused == 'auto'):
        raise ValueError(f"fused must be 'auto', True or False, got "
                         f'{fused!r}.')
    return fused


def fused_for(fused: Union[str, bool], tensor: torch.Tensor) -> bool:
    """Whether the option ``fused`` takes the fused path for ``tensor``:
    always with True, never with False, and with ``'auto'`` for CUDA
    tensors only. On the CPU the eager path's rounding is the one the
    shipped checkpoints and results were made with."""
    return fused is True or (fused == 'auto' and tensor.device.type == 'cuda')
