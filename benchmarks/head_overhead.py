"""Train-step time of ETFHead + DR against LinearClsHead + CE, side by side.

Both models share the backbone architecture and initial weights; steps of the
two are interleaved in rounds so that machine noise hits both alike, and the
table reports medians and their ratio. ``--preset cifar10`` (default, CPU
friendly): ResNet-32 on 32x32 images, 10 classes; ``cifar100``: width-32
ResNet-32, 100 classes; ``imagenet``: ResNet-50 on 224x224 images, 1000
classes (meant for a GPU). A second table times the heads alone (features
that require grad -> head loss -> backward) at ImageNet size (2048-d, 1000
classes), where the head's own cost is not hidden behind the backbone: the
ETF head with DR and CE and the cosine head with LA, each by its eager path
and its fused one (``fused=True``: BatchNorm, normalisation and dot products,
and the DR loss, as autograd functions with closed-form backward passes;
with the default ``fused='auto'`` a CUDA run takes it, a CPU run the eager
path), against LinearClsHead + CE.

Each table ends with the operators one step launches, counted by
``torch.profiler``: ATen operators called from Python or autograd (on every
device) and, on a GPU, the kernels that ran. On a GPU the eager head is
bound by these launches, not by arithmetic, so the counts explain the times
and can be checked on a machine without one.

    python benchmarks/head_overhead.py [--preset cifar10|cifar100|imagenet]
        [--device cpu|cuda] [--amp [--amp-dtype bfloat16|float16]]
        [--only full|heads] [--batch N] [--rounds R] [--steps S]
        [--fused auto|on|off]

``--fused`` chooses the path of the full step's ETF head (default ``auto``,
as a config that does not set it).
"""
import argparse
import contextlib
import copy
import statistics
import time

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

import etf_plugin  # noqa: F401

PRESETS = dict(
    cifar10=dict(
        backbone=dict(type='CifarResNet'),
        channels=64, num_classes=10, image=32, batch=128),
    cifar100=dict(
        backbone=dict(type='CifarResNet', base_channels=32),
        channels=128, num_classes=100, image=32, batch=128),
    imagenet=dict(
        backbone=dict(type='ResNet', depth=50, out_indices=(3, )),
        channels=2048, num_classes=1000, image=224, batch=64),
)
ETF, LINEAR = 'ETFHead + DR', 'LinearClsHead + CE'
FUSED_CHOICES = dict(auto='auto', on=True, off=False)


def build_model(preset, head):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=preset['backbone'],
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                num_classes=preset['num_classes'],
                in_channels=preset['channels'],
                **head)))


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


class Precision:
    """fp32, or autocast to ``dtype`` (with a loss scaler for float16)."""

    def __init__(self, device, dtype=None):
        self.device, self.dtype = device, dtype
        self.scaler = (torch.amp.GradScaler(device.type)
                       if dtype == torch.float16 else None)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss):
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optim):
        if self.scaler is None:
            optim.step()
        else:
            self.scaler.step(optim)
            self.scaler.update()

    def __str__(self):
        return 'fp32' if self.dtype is None else f'AMP {self.dtype}'.replace(
            'torch.', '')


def train_step(model, optim, inputs, samples, precision):
    with precision.autocast():
        losses = model(inputs, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad(set_to_none=True)
    precision.backward(loss)
    precision.step(optim)


def time_steps(fn, steps, device):
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def count_launches(fn, device):
    """ATen operators called from Python or autograd (not those called by
    other operators) and device kernels of one call of ``fn``."""
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    ops = kernels = 0
    for event in prof.events():
        if event.device_type == DeviceType.CUDA:
            kernels += 1
        elif event.name.startswith('aten::'):
            parent = event.cpu_parent
            if parent is None or not parent.name.startswith('aten::'):
                ops += 1
    return ops, kernels if device.type == 'cuda' else None


def heads_alone(device, precision, rounds, steps, batch=256, dim=2048,
                num_classes=1000):
    """Forward + backward of each head's loss on given features: median
    seconds and launches per step."""
    # A long-tailed count profile for LA's prior.
    counts = [max(1, round(1000 * 0.995**k)) for k in range(num_classes)]
    losses = {
        'DR': dict(type='DotRegressionLoss'),
        'CE': dict(type='CrossEntropyLoss'),
        'LA': dict(type='LogitAdjustedLoss', class_counts=counts),
    }
    heads = {}
    for head, loss in (('ETFHead', 'DR'), ('ETFHead', 'CE'),
                       ('CosineClsHead', 'LA')):
        for path, fused in (('eager', False), ('fused', True)):
            loss_cfg = dict(losses[loss])
            if loss == 'DR':
                loss_cfg['fused'] = fused
            heads[f'{head} + {loss} ({path})'] = MODELS.build(
                dict(type=head, num_classes=num_classes, in_channels=dim,
                     loss=loss_cfg, fused=fused))
    heads[LINEAR] = MODELS.build(
        dict(type='LinearClsHead', num_classes=num_classes, in_channels=dim))
    # Under AMP the pooled features arrive in the autocast dtype.
    feats = torch.randn(batch, dim, device=device,
                        dtype=precision.dtype or torch.float32,
                        requires_grad=True)
    samples = [
        DataSample().set_gt_label(int(y)).to(device)
        for y in torch.randint(num_classes, (batch, ))
    ]

    def step_of(head):

        def step():
            with precision.autocast():
                loss = head.loss((feats, ), samples)['loss']
            precision.backward(loss)

        return step

    steps_of = {name: step_of(head.to(device)) for name, head in heads.items()}
    times = {name: [] for name in heads}
    for _ in range(rounds + 1):  # the first round warms up
        for name, step in steps_of.items():
            times[name] += time_steps(step, steps, device)
    medians = {k: statistics.median(v[steps:]) for k, v in times.items()}
    launches = {k: count_launches(step, device) for k, step in steps_of.items()}
    return medians, launches


def full_step(preset, batch, device, precision, rounds, steps,
              fused='auto'):
    """Train steps of both models, interleaved: median seconds and launches
    per step."""
    torch.manual_seed(0)
    etf = build_model(
        preset,
        dict(type='ETFHead', with_bn=True, fused=fused,
             loss=dict(type='DotRegressionLoss', class_balanced=True,
                       fused=fused)))
    linear = build_model(
        preset, dict(type='LinearClsHead',
                     loss=dict(type='CrossEntropyLoss')))
    linear.backbone.load_state_dict(copy.deepcopy(etf.backbone.state_dict()))
    inputs = torch.randn(batch, 3, preset['image'], preset['image'],
                         device=device)
    labels = torch.randint(preset['num_classes'], (batch, ))
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    samples = [s.to(device) for s in samples]

    steps_of = {}
    for name, model in ((ETF, etf), (LINEAR, linear)):
        model.to(device).train()
        optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        steps_of[name] = (lambda model=model, optim=optim: train_step(
            model, optim, inputs, samples, precision))
        time_steps(steps_of[name], 2, device)  # warm-up
    times = {name: [] for name in steps_of}
    for _ in range(rounds):
        for name, step in steps_of.items():
            times[name] += time_steps(step, steps, device)
    medians = {k: statistics.median(v) for k, v in times.items()}
    launches = {k: count_launches(step, device) for k, step in steps_of.items()}
    return medians, launches


def print_table(title, medians, launches):
    """One row per head: median time, its ratio to the linear head's, and
    the launches per step."""
    width = max(len(name) for name in medians)
    print(title)
    print(f'| {"head + loss":<{width}} | {"median (ms)":>12} | '
          f'{"/ Linear":>8} | {"ATen ops/step":>13} | {"kernels/step":>12} |')
    print(f'|{"-" * (width + 2)}|{"-" * 14}|{"-" * 10}|{"-" * 15}|'
          f'{"-" * 14}|')
    for name, value in medians.items():
        ops, kernels = launches[name]
        kernels = '-' if kernels is None else kernels
        ratio = value / medians[LINEAR]
        print(f'| {name:<{width}} | {1000 * value:>12.3f} | {ratio:>8.3f} | '
              f'{ops:>13} | {kernels:>12} |')
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=list(PRESETS), default='cifar10')
    parser.add_argument('--batch', type=int, help='override the batch size')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps per model per round')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (autocast), as tools/train.py '
                        '--amp')
    parser.add_argument('--amp-dtype', choices=['bfloat16', 'float16'],
                        default='bfloat16',
                        help='autocast dtype of --amp; float16 adds a '
                        'GradScaler')
    parser.add_argument('--only', choices=['full', 'heads'],
                        help='run one table only (default: both)')
    parser.add_argument('--fused', choices=list(FUSED_CHOICES),
                        default='auto',
                        help="path of the full step's ETF head: auto (fused "
                        'on CUDA), on or off')
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    device = torch.device(args.device)
    batch = args.batch or preset['batch']
    precision = Precision(
        device, getattr(torch, args.amp_dtype) if args.amp else None)

    if args.only != 'heads':
        print_table(
            f'Full train step: preset={args.preset} device={device} '
            f'{precision} batch={batch} classes={preset["num_classes"]} '
            f'feature_dim={preset["channels"]}, fused={args.fused}, '
            f'{args.rounds * args.steps} steps per model (interleaved)',
            *full_step(preset, batch, device, precision, args.rounds,
                       args.steps, FUSED_CHOICES[args.fused]))
    if args.only != 'full':
        print_table(
            f'Heads alone: device={device} {precision}, batch 256, 2048-d '
            f'features, 1000 classes (forward + backward of the loss)',
            *heads_alone(device, precision, args.rounds, 20))


if __name__ == '__main__':
    main()
