"""What ``NeuralCollapseHook(interval=1)`` adds to an ImageNet-LT epoch.

``configs/resnet50_imagenetlt_etf.py`` (ResNet-50, fixed ETF, DR loss, Mixup,
SGD, the config's own augmentation) loaded with ``mmengine.Config`` and
changed only where a CPU run without ImageNet needs it:

- the data are generated in memory: ``--num-samples`` random RGB images
  (default 320) of ``--image-size`` (default 112 x 112, a quarter of
  ImageNet's 224 x 224 pixels, to fit a CPU budget; 224 takes about 4x
  longer) with labels drawn from an
  ImageNet-LT-like exponential profile over 1,000 classes (imbalance 256:
  1280 ... 5); no files are read or written besides the work dir;
- ``LoadImageFromFile`` is dropped from both pipelines and the crop sizes
  follow ``--image-size`` (RandomResizedCrop for training; ResizeEdge 8/7 x
  then CenterCrop for the test pipeline the hook measures through);
- batch ``--batch-size`` (default 16), ``num_workers=0``, no validation, no
  checkpoints;
- ``NeuralCollapseHook(interval=1)`` (its defaults: both passes, i.e. NC4
  too, the JSON record and the figure) is added to the config's hooks.

Each epoch is timed from ``before_train_epoch`` to the first
``after_train_epoch`` hook, the hook's ``measure`` on its own, so the table
gives, per epoch, the training time, the hook's time split into its two
feature passes and the rest (``compute`` of the metrics, the JSON record and
the figure) and their ratio; the two alternate, so load changes hit both.
Memory: the accumulator's float64 state (``counts, sums, S``: ``K + K d +
d^2`` numbers, about 50 MB for K = 1000, d = 2048), read from the hook's own
accumulator, and the peak resident-set growth of the process while the hook
measures (sampled every millisecond from ``/proc/self/statm``; it includes
the eval forward passes' activations and is bounded by what the allocator
kept from training); and, before training, the growth of a plain forward
pass over the hook's loader and then that of one measurement of the hook,
which is the hook's own memory beyond the model's activations.

    OMP_NUM_THREADS=1 python benchmarks/nc_hook_overhead.py \\
        [--num-samples 320] [--image-size 112] [--batch-size 16] [--epochs 3]
"""
import argparse
import copy
import os
import statistics
import tempfile
import threading
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

import etf_plugin  # noqa: F401  (registers the plugin)
import etf_plugin.engine.hooks.neural_collapse_hook as nc_hook_module
from etf_plugin.engine.hooks import NeuralCollapseHook
from etf_plugin.functional import NCAccumulator
from etf_plugin.models.utils.features import extract_features

CONFIG = 'configs/resnet50_imagenetlt_etf.py'
NUM_CLASSES = 1000


@DATASETS.register_module(force=True)
class GeneratedImageNetLT(BaseDataset):
    """Random uint8 images with long-tailed labels, kept in memory. The
    images are made once per (size, count, seed) and shared by every build
    (the hook builds its own copy of the training set)."""

    _cache = {}
    METAINFO = dict(classes=[f'class_{c:04d}' for c in range(NUM_CLASSES)])

    def __init__(self, num_samples, image_size, seed=0, **kwargs):
        self.num_samples = num_samples
        self.image_size = image_size
        self.seed = seed
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self):
        key = (self.num_samples, self.image_size, self.seed)
        if key not in self._cache:
            rng = np.random.default_rng(self.seed)
            # ImageNet-LT-like: n_c = 1280 * (5 / 1280) ** (c / 999).
            probs = (5 / 1280)**(np.arange(NUM_CLASSES) / (NUM_CLASSES - 1))
            labels = rng.choice(
                NUM_CLASSES, size=self.num_samples, p=probs / probs.sum())
            images = rng.integers(
                0, 256, size=(self.num_samples, self.image_size,
                              self.image_size, 3), dtype=np.uint8)
            self._cache[key] = (images, labels)
        images, labels = self._cache[key]
        return [
            dict(img=images[i], gt_label=int(labels[i]))
            for i in range(self.num_samples)
        ]


class EpochTimer(Hook):
    """Training time of each epoch, before any other after-epoch hook."""

    priority = 'HIGHEST'

    def __init__(self):
        self.train_seconds = []

    def before_train_epoch(self, runner):
        self._start = time.perf_counter()

    def after_train_epoch(self, runner):
        self.train_seconds.append(time.perf_counter() - self._start)


class ColdMeasurement(Hook):
    """Before the first epoch (no memory freed by a backward pass held by
    the allocator yet): a no-grad forward pass over the hook's loader, then
    one measurement of the hook. The RSS growth of the first is what the
    model's eval activations take; that of the second, which reuses them,
    is the hook's own memory. Not counted in the epoch table."""

    priority = 'LOWEST'

    def __init__(self):
        self.forward_growth = None

    def before_train(self, runner):
        hook = next(h for h in runner.hooks
                    if isinstance(h, NeuralCollapseHook))
        model = runner.model
        model.eval()
        with RssSampler() as rss, torch.no_grad():
            for data_batch in hook._get_dataloader(runner):
                extract_features(model, data_batch, hook.stage)
        model.train()
        self.forward_growth = (rss.peak - rss.start, rss.start)
        hook.measure(runner, epoch=0)


class RssSampler:
    """Peak resident set size while a block runs (a 1 ms sampling thread)."""

    page = os.sysconf('SC_PAGE_SIZE')

    @classmethod
    def rss(cls):
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * cls.page

    def __enter__(self):
        self.start = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def build_cfg(args, work_dir):
    cfg = Config.fromfile(CONFIG)
    size = args.image_size
    train_pipeline = [
        copy.deepcopy(t) for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] != 'LoadImageFromFile'
    ]
    for t in train_pipeline:
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = size
    test_pipeline = [
        copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] != 'LoadImageFromFile'
    ]
    for t in test_pipeline:
        if t['type'] == 'ResizeEdge':
            t['scale'] = size * 8 // 7  # 256 / 224
        if t['type'] == 'CenterCrop':
            t['crop_size'] = size
    data = dict(
        type='GeneratedImageNetLT',
        num_samples=args.num_samples,
        image_size=size,
        seed=args.seed)
    # Replaced, not merged: nothing of the ImageNet dataset dicts is kept.
    cfg.train_dataloader.pop('dataset')
    cfg.train_dataloader.update(
        batch_size=args.batch_size,
        num_workers=0,
        persistent_workers=False,
        drop_last=True,  # no 1-sample batch for the ETF head's BatchNorm
        dataset=dict(**data, pipeline=train_pipeline))
    cfg.test_dataloader.pop('dataset')
    cfg.test_dataloader.update(
        batch_size=args.batch_size,
        num_workers=0,
        dataset=dict(**data, pipeline=test_pipeline))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.train_cfg.update(max_epochs=args.epochs, val_interval=10**6)
    cfg.default_hooks.checkpoint = dict(
        type='AtomicCheckpointHook', interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='NeuralCollapseHook', interval=1)
    ]
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.log_level = 'WARNING'
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-samples', type=int, default=320)
    parser.add_argument('--image-size', type=int, default=112)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    # The hook draws its figure with pyplot: imported here, so that the
    # import is not counted in the first measurement's memory.
    import matplotlib.pyplot  # noqa: F401

    # Instrumentation of the hook, from the outside: its accumulator (for
    # the state size), the time of its feature passes (the two methods that
    # loop over the loader) and of the whole measure().
    accumulators, passes = [], []

    class RecordedAccumulator(NCAccumulator):

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            accumulators.append(self)

    nc_hook_module.NCAccumulator = RecordedAccumulator

    def timed(method):

        def wrapper(*a, **kw):
            start = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                passes.append(time.perf_counter() - start)

        return wrapper

    for name in ('_accumulate', '_accumulate_ncc'):
        setattr(NeuralCollapseHook, name,
                timed(getattr(NeuralCollapseHook, name)))
    measures = []  # (total s, feature passes s, rss start, rss peak)
    original_measure = NeuralCollapseHook.measure

    def timed_measure(self, runner, epoch):
        passes.clear()
        with RssSampler() as rss:
            start = time.perf_counter()
            metrics = original_measure(self, runner, epoch)
            total = time.perf_counter() - start
        if metrics is not None:
            measures.append((total, sum(passes), rss.start, rss.peak))
        return metrics

    NeuralCollapseHook.measure = timed_measure

    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_cfg(args, work_dir)
        runner = Runner.from_cfg(cfg)
        timer = EpochTimer()
        runner.register_hook(timer)
        cold_hook = ColdMeasurement()
        runner.register_hook(cold_hook)
        wall = time.perf_counter()
        runner.train()
        wall = time.perf_counter() - wall

    n = args.num_samples
    print(f'{CONFIG}: {n} generated {args.image_size}x{args.image_size} '
          f'images, {NUM_CLASSES} classes (long-tailed labels), batch '
          f'{args.batch_size}, {torch.get_num_threads()} thread(s), '
          f'{args.epochs} epochs in {wall:.0f} s')
    print(f'{"epoch":>5}{"train s":>10}{"hook s":>9}{"passes s":>10}'
          f'{"rest s":>8}{"hook/train":>12}')
    cold, measures = measures[0], measures[1:]
    ratios = []
    for epoch, (train_s, (hook_s, passes_s, _, _)) in enumerate(
            zip(timer.train_seconds, measures), 1):
        ratios.append(hook_s / train_s)
        print(f'{epoch:>5}{train_s:>10.1f}{hook_s:>9.1f}{passes_s:>10.1f}'
              f'{hook_s - passes_s:>8.1f}{hook_s / train_s:>11.1%}')
    train_med = statistics.median(timer.train_seconds)
    passes_med = statistics.median(m[1] for m in measures)
    rest_med = statistics.median(m[0] - m[1] for m in measures)
    print(f'median: the hook adds {statistics.median(ratios):.1%} to an '
          f'epoch; per sample: training {train_med / n * 1e3:.0f} ms, the '
          f'hook\'s two passes {passes_med / n * 1e3:.0f} ms '
          f'({passes_med / train_med:.1%}), plus {rest_med:.1f} s per '
          f'measurement independent of N (compute, record, figure)')
    acc = accumulators[-1]
    state = sum(t.numel() * t.element_size() for t in acc.statistics())
    k, d = acc.num_classes, acc.dim
    formula = 8 * (k + k * d + d * d)
    peak = max(m[3] - m[2] for m in measures)
    print(f'memory: accumulator state {state / 1e6:.1f} MB ('
          f'{state / 2**20:.1f} MiB; 8 (K + K d + d^2) = {formula / 1e6:.1f} '
          f'MB for K={k}, d={d})')
    growth, start = cold_hook.forward_growth
    print(f'  before training: peak RSS growth of a plain no-grad forward '
          f'pass over the same loader {growth / 1e6:.1f} MB (from '
          f'{start / 1e6:.0f} MB), then of a hook measurement '
          f'{(cold[3] - cold[2]) / 1e6:.1f} MB (its own memory: state, '
          f'per-batch float64 copies, compute() temporaries)')
    print(f'  peak RSS growth of the after-epoch measurements: '
          f'{peak / 1e6:.1f} MB (from {max(m[2] for m in measures) / 1e6:.0f}'
          f' MB; the allocator reuses what training freed)')


if __name__ == '__main__':
    main()
