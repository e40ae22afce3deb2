"""Train-step time of ETFHead + DR against LinearClsHead + CE, side by side.

Both models share the backbone architecture and initial weights; steps of the
two are interleaved in rounds so that machine noise hits both alike, and the
table reports medians and their ratio. ``--preset cifar10`` (default, CPU
friendly): ResNet-32 on 32x32 images, 10 classes; ``cifar100``: width-32
ResNet-32, 100 classes; ``imagenet``: ResNet-50 on 224x224 images, 1000
classes (meant for a GPU). A second table times the heads alone (features
that require grad -> head loss -> backward) at ImageNet size (2048-d, 1000
classes), where the head's own cost is not hidden behind the backbone.

    python benchmarks/head_overhead.py [--preset cifar10|cifar100|imagenet]
        [--device cpu|cuda]
"""
import argparse
import copy
import statistics
import time

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

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


def time_steps(model, optim, inputs, samples, steps, device):
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        losses = model(inputs, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def time_heads_alone(device, rounds, steps, batch=256, dim=2048,
                     num_classes=1000):
    """Median forward+backward time of each head's loss on given features."""
    heads = {
        'ETFHead + DR': MODELS.build(
            dict(type='ETFHead', num_classes=num_classes, in_channels=dim)),
        'LinearClsHead + CE': MODELS.build(
            dict(type='LinearClsHead', num_classes=num_classes,
                 in_channels=dim)),
    }
    feats = torch.randn(batch, dim, device=device, requires_grad=True)
    samples = [
        DataSample().set_gt_label(int(y)).to(device)
        for y in torch.randint(num_classes, (batch, ))
    ]
    times = {name: [] for name in heads}
    for _ in range(rounds + 1):  # the first round warms up
        for name, head in heads.items():
            head.to(device)
            for _ in range(steps):
                sync(device)
                start = time.perf_counter()
                head.loss((feats, ), samples)['loss'].backward()
                sync(device)
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v[steps:]) for k, v in times.items()}


def print_table(title, medians):
    ratio = medians['ETFHead + DR'] / medians['LinearClsHead + CE']
    print(title)
    print(f'| {"head + loss":<20} | {"median (ms)":>12} |')
    print(f'|{"-" * 22}|{"-" * 14}|')
    for name, value in medians.items():
        print(f'| {name:<20} | {1000 * value:>12.3f} |')
    print(f'ratio ETF/Linear: {ratio:.3f}\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=list(PRESETS), default='cifar10')
    parser.add_argument('--batch', type=int, help='override the batch size')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=5,
                        help='timed steps per model per round')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    device = torch.device(args.device)
    batch = args.batch or preset['batch']

    torch.manual_seed(0)
    etf = build_model(
        preset,
        dict(type='ETFHead', with_bn=True,
             loss=dict(type='DotRegressionLoss', class_balanced=True)))
    linear = build_model(
        preset, dict(type='LinearClsHead',
                     loss=dict(type='CrossEntropyLoss')))
    linear.backbone.load_state_dict(copy.deepcopy(etf.backbone.state_dict()))
    inputs = torch.randn(batch, 3, preset['image'], preset['image'],
                         device=device)
    labels = torch.randint(preset['num_classes'], (batch, ))
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    samples = [s.to(device) for s in samples]

    runs = {}
    for name, model in (('ETFHead + DR', etf), ('LinearClsHead + CE',
                                                   linear)):
        model.to(device).train()
        optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        time_steps(model, optim, inputs, samples, 2, device)  # warm-up
        runs[name] = dict(model=model, optim=optim, times=[])
    for _ in range(args.rounds):
        for run in runs.values():
            run['times'] += time_steps(run['model'], run['optim'], inputs,
                                       samples, args.steps, device)

    medians = {k: statistics.median(v['times']) for k, v in runs.items()}
    print_table(
        f'Full train step: preset={args.preset} device={device} '
        f'batch={batch} classes={preset["num_classes"]} '
        f'feature_dim={preset["channels"]}, '
        f'{args.rounds * args.steps} steps per model (interleaved)', medians)
    print_table(
        'Heads alone: batch 256, 2048-d features, 1000 classes '
        '(forward + backward of the loss)',
        time_heads_alone(device, args.rounds, 20))


if __name__ == '__main__':
    main()
