"""Training throughput of the digits-LT demo in 1 process and in 2 processes
(tools/dist_train.sh, DDP over gloo on the CPU), side by side.

Each setting trains ``configs/resnet32_digitslt_etf.py`` with the real tools
for ``--epochs`` epochs without validation, logging every iteration's time
(``log_processor.window_size=1``); the first epoch (worker start-up, warm-up)
is left out. images/s = training images seen by all ranks / summed iteration
time. The settings run in turn, ``--repeats`` rounds, and the table shows
the median of each and its ratio to the first row: one process with one
thread, the same compute budget per process as each torchrun worker (torchrun
sets ``OMP_NUM_THREADS=1``). The default-threads row shows what a single
process gets from PyTorch's intra-op threads, and how badly they suffer when
other processes compete for the cores.

Usage::

    python benchmarks/dist_throughput.py              # 6 epochs, 1 round
    python benchmarks/dist_throughput.py --repeats 3
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')
TRAIN_IMAGES = 304  # the digits-LT training set

# name, processes, images per process and batch, OMP threads per process
# (None: PyTorch's default, one per core)
SETTINGS = [
    ('1 process, 1 thread', 1, 32, 1),
    ('1 process, default threads', 1, 32, None),
    ('2 processes x 32 (global 64)', 2, 32, 1),
    ('2 processes x 16 (global 32)', 2, 16, 1),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--port', type=int, default=None,
                        help='torchrun port (default: a free one)')
    return parser.parse_args()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train(work_dir, processes, batch_size, threads, epochs, port):
    """Train once; returns the per-iteration times after the first epoch."""
    options = [
        f'train_cfg.max_epochs={epochs}', 'log_processor.window_size=1',
        'default_hooks.logger.interval=1',
        f'train_dataloader.batch_size={batch_size}',
        f'default_hooks.checkpoint.interval={epochs}'
    ]
    args = ['--work-dir', work_dir, '--no-validate', '--cfg-options',
            *options]
    if processes == 1:
        command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
                   CONFIG, *args]
    else:
        command = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'),
                   CONFIG, str(processes), *args]
    env = dict(os.environ, PYTHON=sys.executable,
               PORT=str(port or free_port()))
    env.pop('OMP_NUM_THREADS', None)
    if threads is not None:
        env['OMP_NUM_THREADS'] = str(threads)
    result = subprocess.run(command, env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars[0]) as f:
        records = [json.loads(line) for line in f]
    iters_per_epoch = len([r for r in records if 'time' in r]) // epochs
    return [r['time'] for r in records if 'time' in r][iters_per_epoch:]


def main():
    args = parse_args()
    measured = {name: [] for name, *_ in SETTINGS}
    iter_times = {name: [] for name, *_ in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            for i, (name, processes, batch, threads) in enumerate(SETTINGS):
                work_dir = osp.join(tmp, f'{round_}_{i}')
                times = train(work_dir, processes, batch, threads,
                              args.epochs, args.port)
                images = TRAIN_IMAGES * (args.epochs - 1)
                measured[name].append(images / sum(times))
                iter_times[name].append(statistics.median(times))

    print(f'digits-LT ResNet training, {args.epochs - 1} timed epochs of '
          f'{TRAIN_IMAGES} images, torch {torch.__version__}, '
          f'{os.cpu_count()} CPUs, load average at the end '
          f'{os.getloadavg()[0]:.1f}, median of {args.repeats} round(s)')
    reference = statistics.median(measured[SETTINGS[0][0]])
    print(f'| {"setting":<30} | {"images/s":>9} | {"vs row 1":>8} | '
          f'{"median iter (ms)":>16} |')
    print(f'|{"-" * 32}|{"-" * 11}|{"-" * 10}|{"-" * 18}|')
    for name, *_ in SETTINGS:
        speed = statistics.median(measured[name])
        iter_ms = 1000 * statistics.median(iter_times[name])
        print(f'| {name:<30} | {speed:>9.0f} | {speed / reference:>7.2f}x | '
              f'{iter_ms:>16.1f} |')


if __name__ == '__main__':
    main()
