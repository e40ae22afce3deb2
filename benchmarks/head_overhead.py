"""Train-step time of ETFHead + DR against LinearClsHead + CE, side by side.

Both models share the backbone architecture and initial weights; steps of the
two are interleaved in rounds so that machine noise hits both alike, and the
table reports medians and their ratio. ``--preset cifar`` (default, CPU
friendly): ResNet-32 on 32x32 images, 100 classes. ``--preset imagenet``:
ResNet-50 on 224x224 images, 1000 classes (meant for a GPU).

    python benchmarks/head_overhead.py [--preset cifar|imagenet] [--device cpu]
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
    cifar=dict(
        backbone=dict(type='ResNet32_CIFAR', base_channels=32),
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=list(PRESETS), default='cifar')
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
    ratio = medians['ETFHead + DR'] / medians['LinearClsHead + CE']
    print(f'preset={args.preset} device={device} batch={batch} '
          f'classes={preset["num_classes"]} feature_dim={preset["channels"]} '
          f'steps={args.rounds * args.steps} per model (interleaved)')
    print(f'| {"head + loss":<20} | {"median step (ms)":>16} |')
    print(f'|{"-" * 22}|{"-" * 18}|')
    for name, value in medians.items():
        print(f'| {name:<20} | {1000 * value:>16.2f} |')
    print(f'ratio ETF/Linear: {ratio:.3f}')


if __name__ == '__main__':
    main()
