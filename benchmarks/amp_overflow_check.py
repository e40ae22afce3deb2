"""A forced overflow under MMEngine's ``AmpOptimWrapper``: the step is
skipped, the loss scale halves, the next step trains, and the run ends
normally; the same fault without a loss scaler stops at once with
``NonFiniteLossHook``'s message.

A CifarResNet-8 + ``ETFHead`` + DR model trains for a few iterations in
MMEngine's ``Runner``; at ``--overflow-iter`` the loss is made infinite
(the DR loss's ``loss_weight`` set to ``inf`` for that iteration), so the
scaled gradients are infinite. On a GPU this is MMEngine's own fp16 path.
MMEngine 0.10.7 builds ``AmpOptimWrapper`` only when a GPU is visible and
autocasts the CPU to bfloat16 only, so on a CPU the wrapper is built with
that check bypassed, autocasts to bfloat16, and gets ``torch.amp.
GradScaler('cpu')`` as its loss scaler: the skip-and-halve logic is the
same code as on the GPU, the autocast dtype is not.

    python benchmarks/amp_overflow_check.py

Prints one row per iteration and exits non-zero if a check fails.
"""
import argparse
import sys
import tempfile
from unittest import mock

import torch
from mmengine.hooks import Hook
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

from etf_plugin.engine.hooks import NonFiniteLossHook

NUM_CLASSES = 4


class RandomImages(Dataset):
    """Random 3x16x16 images with labels ``i % NUM_CLASSES``."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        image = torch.randint(0, 256, (3, 16, 16), generator=generator,
                              dtype=torch.uint8)
        return dict(inputs=image,
                    data_samples=DataSample().set_gt_label(
                        index % NUM_CLASSES))


def build_model(loss=dict(type='DotRegressionLoss')):
    """A CifarResNet-8 + ETFHead classifier, seeded."""
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='CifarResNet', depth=8),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='ETFHead', num_classes=NUM_CLASSES,
                           in_channels=64, loss=loss)))


def dataloader():
    """Batches of 16 :class:`RandomImages`, in order."""
    return DataLoader(
        RandomImages(), batch_size=16, shuffle=False,
        collate_fn=lambda batch: dict(
            inputs=[b['inputs'] for b in batch],
            data_samples=[b['data_samples'] for b in batch]))


class ForceOverflow(Hook):
    """Makes the loss infinite at one iteration and records every step."""

    priority = 'LOWEST'

    def __init__(self, overflow_iter):
        self.overflow_iter = overflow_iter
        self.rows = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.params = [p.detach().clone() for p in
                       runner.model.parameters()]
        self.scale = _scale(runner.optim_wrapper)
        if runner.iter == self.overflow_iter:
            runner.model.head.loss_module.loss_weight = float('inf')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        runner.model.head.loss_module.loss_weight = 1.0
        updated = any(not torch.equal(a, b) for a, b in zip(
            self.params, runner.model.parameters()))
        self.rows.append(
            dict(iter=runner.iter,
                 loss=runner.message_hub.get_scalar('train/loss').current(),
                 scale_before=self.scale,
                 scale_after=_scale(runner.optim_wrapper), updated=updated))


def _scale(optim_wrapper):
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    return None if scaler is None else float(scaler.get_scale())


class CPULossScaler(Hook):
    """Give ``AmpOptimWrapper`` ``torch.amp.GradScaler('cpu')``: on a CPU
    MMEngine builds CUDA's scaler, which disables itself there."""

    priority = 'VERY_HIGH'

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def before_train(self, runner):
        runner.optim_wrapper.loss_scaler = torch.amp.GradScaler(
            'cpu', **self.kwargs)


def train(model, hooks, amp=False, max_iters=2, lr=0.1,
          loss_scale='dynamic', **runner_kwargs):
    """Train ``model`` on :func:`dataloader` in MMEngine's Runner (in a
    temporary work dir) for ``max_iters`` iterations, with SGD and, with
    ``amp``, ``AmpOptimWrapper``: float16 on a GPU, bfloat16 with
    :class:`CPULossScaler` on a CPU."""
    cpu = not torch.cuda.is_available()
    hooks = list(hooks)
    optim_wrapper = dict(optimizer=dict(type='SGD', lr=lr, momentum=0.9))
    if amp:
        optim_wrapper.update(
            type='AmpOptimWrapper',
            dtype='bfloat16' if cpu else 'float16',
            loss_scale=loss_scale)
        if cpu:
            hooks.insert(0, CPULossScaler(
                **(loss_scale if isinstance(loss_scale, dict) else {})))
    with tempfile.TemporaryDirectory() as work_dir, mock.patch.object(
            amp_optimizer_wrapper, 'is_cuda_available', lambda: True):
        Runner(
            model=model,
            work_dir=work_dir,
            train_dataloader=dataloader(),
            optim_wrapper=optim_wrapper,
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            default_hooks=dict(checkpoint=None),
            custom_hooks=hooks,
            default_scope='mmpretrain',
            randomness=dict(seed=0),
            log_level='WARNING',
            **runner_kwargs).train()


def run(amp=True, overflow_iter=2, max_iters=5):
    """Train ``max_iters`` iterations with an infinite loss at
    ``overflow_iter``, on the GPU if one is visible (MMEngine's choice).

    Returns:
        tuple[list[dict], Exception | None]: one row per finished iteration
        (``iter``, ``loss``, ``scale_before``, ``scale_after``, ``updated``)
        and the exception that ended the run, if any.
    """
    probe = ForceOverflow(overflow_iter)
    try:
        train(build_model(), [NonFiniteLossHook(), probe], amp, max_iters,
              lr=0.05, loss_scale=dict(init_scale=1024.0),
              experiment_name=f'overflow_{amp}')
    except FloatingPointError as error:
        return probe.rows, error
    return probe.rows, None


def check(rows, error, amp, overflow_iter, max_iters):
    """The failed checks, as messages (empty when all pass)."""
    failures = []
    if amp:
        if error is not None:
            failures.append(f'the AMP run died: {error}')
        if len(rows) != max_iters:
            return failures + [f'{len(rows)} of {max_iters} iterations ran']
        skipped, after = rows[overflow_iter], rows[overflow_iter + 1]
        if skipped['loss'] == skipped['loss'] and abs(skipped['loss']) < 1e30:
            failures.append('the forced loss was finite')
        if skipped['updated']:
            failures.append('the overflowing step changed the weights')
        if skipped['scale_after'] != skipped['scale_before'] / 2:
            failures.append('the loss scale did not halve')
        if not after['updated'] or not abs(after['loss']) < 1e30:
            failures.append('the step after the overflow did not train')
    else:
        if not isinstance(error, FloatingPointError) or \
                'diverged' not in str(error):
            failures.append('the fp32 run did not stop with '
                            'NonFiniteLossHook\'s message')
        if len(rows) != overflow_iter:
            failures.append(f'the fp32 run stopped after {len(rows)} '
                            f'iterations, not at iteration {overflow_iter}')
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--overflow-iter', type=int, default=2)
    parser.add_argument('--max-iters', type=int, default=5)
    args = parser.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    failures = []
    for amp in (True, False):
        rows, error = run(amp, args.overflow_iter, args.max_iters)
        mode = ('AMP ' + ('bfloat16, GradScaler(cpu)' if device == 'cpu'
                          else 'float16, MMEngine\'s GradScaler')
                if amp else 'fp32, no loss scaler')
        print(f'{mode} on {device}: loss made inf at iteration '
              f'{args.overflow_iter} (0-based)')
        print('| iter | loss | scale before | scale after | weights '
              'updated |')
        print('|---|---|---|---|---|')
        for row in rows:
            print(f'| {row["iter"]} | {row["loss"]:.4g} | '
                  f'{row["scale_before"]} | {row["scale_after"]} | '
                  f'{row["updated"]} |')
        if error is not None:
            print(f'stopped: {type(error).__name__}: {error}')
        found = check(rows, error, amp, args.overflow_iter, args.max_iters)
        print('checks: ' + ('all passed' if not found else '; '.join(found)))
        print()
        failures += found
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
