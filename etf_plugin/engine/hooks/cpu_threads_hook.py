"""``CPUThreadsHook``: a sensible intra-op thread count for small models on
CPU."""
import os

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CPUThreadsHook(Hook):
    """Set PyTorch's CPU thread count at the start of a run.

    PyTorch uses one thread per core by default. For a small model (the
    digits demo's ResNet-32 on 8x8 images) each operation is too short to
    split, and on a machine shared with other work the threads spend their
    time waiting for each other (README gives the measured times). A fixed
    count also keeps CPU results bit-reproducible (float reductions split
    over threads differ in rounding).

    The environment wins: with ``OMP_NUM_THREADS`` set, the hook does
    nothing, so ``OMP_NUM_THREADS=2 python tools/train.py ...`` overrides
    it. Nothing changes on GPUs, whose kernels do not use these threads.

    Args:
        num_threads (int): Threads for PyTorch's CPU operations. Defaults
            to 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_threads: int = 1):
        if int(num_threads) != num_threads or num_threads < 1:
            raise ValueError(f'num_threads must be a positive integer, got '
                             f'{num_threads!r}.')
        self.num_threads = int(num_threads)

    def before_run(self, runner) -> None:
        if os.environ.get('OMP_NUM_THREADS'):
            return
        torch.set_num_threads(self.num_threads)
        runner.logger.info(
            f'CPUThreadsHook: PyTorch uses {self.num_threads} CPU thread(s); '
            f'set OMP_NUM_THREADS to choose another number.')
