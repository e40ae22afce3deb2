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
- two ``NeuralCollapseHook(interval=1)`` (their defaults: NC4 too, the
  JSON record, the figure every ``plot_interval`` = 10 measurements)
  measure after every epoch, in alternating
  order: the hook as shipped (one pass: the features of the statistics pass
  are kept for NC4) and the same hook with ``nc4_cache_mb=0``, which takes
  the second pass for NC4 as the hook did before it kept them ("two-pass").

Each epoch is timed from ``before_train_epoch`` to the first
``after_train_epoch`` hook, each measurement on its own, so the table gives,
per epoch, the training time, both measurements (the one-pass one split
into its feature pass and the rest: ``compute`` of the metrics, the JSON
record and, when drawn, the figure, also timed on its own), the share of the epoch each adds and the ratio
one-pass / two-pass. The metrics of the two measurements of an epoch are
compared (largest absolute difference; they must agree to 1e-6).
Memory: the accumulator's float64 state (``counts, sums, S, sq norms``:
``2 K + K d + d^2`` numbers, about 50 MB for K = 1000, d = 2048) and the
features kept for NC4 (``N d`` float32), read from the hook's own objects,
and the peak resident-set growth of the process while the hook measures
(sampled every millisecond from ``/proc/self/statm``; it includes the eval
forward passes' activations and is bounded by what the allocator kept from
training); and, before training, the growth of a plain forward pass over the
hook's loader and then that of one measurement of the hook, which is the
hook's own memory beyond the model's activations. With ``--device cuda``
the peak of ``torch.cuda.max_memory_allocated`` during a measurement is
given instead of the RSS.

    OMP_NUM_THREADS=1 python benchmarks/nc_hook_overhead.py \\
        [--num-samples 320] [--image-size 112] [--batch-size 16] \\
        [--epochs 3] [--device cpu|cuda]
"""
import os
import sys

# --device cpu hides the GPUs before anything initialises CUDA, so that the
# Runner builds the model on the CPU on a GPU machine too.
_ARGS = sys.argv[1:]
if 'cuda' not in [v for k, v in zip(_ARGS, _ARGS[1:]) if k == '--device']:
    os.environ['CUDA_VISIBLE_DEVICES'] = ''

import argparse  # noqa: E402
import copy  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmpretrain.datasets import BaseDataset  # noqa: E402
from mmpretrain.registry import DATASETS  # noqa: E402

import etf_plugin  # noqa: F401,E402  (registers the plugin)
import etf_plugin.engine.neural_collapse as nc_module  # noqa: E402
from etf_plugin.engine.hooks import NeuralCollapseHook  # noqa: E402
from etf_plugin.functional import NCAccumulator  # noqa: E402
from etf_plugin.models.utils.features import extract_features  # noqa: E402

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
        synchronize()
        self._start = time.perf_counter()

    def after_train_epoch(self, runner):
        synchronize()
        self.train_seconds.append(time.perf_counter() - self._start)


class AlternatingMeasurements(Hook):
    """After every epoch, the one-pass and the two-pass hook measure, in an
    order that alternates from epoch to epoch (ABBA)."""

    priority = 'ABOVE_NORMAL'  # before the hooks' own end-of-training call

    def __init__(self):
        self.metrics = []  # per epoch: {'one-pass': ..., 'two-pass': ...}

    def after_train_epoch(self, runner):
        hooks = nc_hooks(runner)
        names = list(hooks) if runner.epoch % 2 == 0 else list(hooks)[::-1]
        metrics = {}
        for name in names:
            hooks[name]._last_iter = None  # measured before training
            metrics[name] = hooks[name].measure(runner, runner.epoch + 1)
        self.metrics.append(metrics)


def nc_hooks(runner):
    """The two hooks under test, by name."""
    hooks = [h for h in runner.hooks if isinstance(h, NeuralCollapseHook)]
    return {
        'one-pass' if h.nc4_cache_mb != 0 else 'two-pass': h
        for h in hooks
    }


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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
        hook = nc_hooks(runner)['one-pass']
        model = runner.model
        model.eval()
        with RssSampler() as rss, torch.no_grad():
            for data_batch in hook._get_dataloader(runner):
                extract_features(model, data_batch, hook.stage)
        model.train()
        self.forward_growth = (rss.peak - rss.start, rss.start)
        hook.measure(runner, epoch=0)
        hook._last_iter = None


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
    # Both measure from AlternatingMeasurements; their own interval never
    # comes, and their end-of-training call finds the iteration measured.
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='NeuralCollapseHook', interval=10**6),
        dict(
            type='NeuralCollapseHook',
            interval=10**6,
            nc4_cache_mb=0,
            out_file='nc_metrics_two_pass.json',
            plot_file='nc_curves_two_pass.png')
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
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    args = parser.parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no GPU is visible to torch.')
    # The hook draws its figure with pyplot: imported here, so that the
    # import is not counted in the first measurement's memory.
    import matplotlib.pyplot  # noqa: F401

    # Instrumentation of the hooks, from the outside: their accumulators
    # (for the state size), the time of their feature passes and of the
    # whole measure().
    accumulators, passes = [], []

    class RecordedAccumulator(NCAccumulator):

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            accumulators.append(self)

    nc_module.NCAccumulator = RecordedAccumulator

    original_collect = NeuralCollapseHook._collect

    def timed_collect(*a, **kw):
        synchronize()
        start = time.perf_counter()
        try:
            return original_collect(*a, **kw)
        finally:
            synchronize()
            passes.append(time.perf_counter() - start)

    NeuralCollapseHook._collect = timed_collect
    # name -> [(total s, feature passes s, memory start, memory peak)]
    measures = {'one-pass': [], 'two-pass': []}
    original_measure = NeuralCollapseHook.measure

    def timed_measure(self, runner, epoch):
        passes.clear()
        if args.device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        with RssSampler() as rss:
            synchronize()
            start = time.perf_counter()
            metrics = original_measure(self, runner, epoch)
            synchronize()
            total = time.perf_counter() - start
        if args.device == 'cuda':
            memory = (torch.cuda.memory_allocated(),
                      torch.cuda.max_memory_allocated())
        else:
            memory = (rss.start, rss.peak)
        if metrics is not None:
            name = 'one-pass' if self.nc4_cache_mb != 0 else 'two-pass'
            measures[name].append((total, sum(passes), *memory))
        return metrics

    NeuralCollapseHook.measure = timed_measure
    draws = []  # seconds of each figure the hooks drew
    original_draw = NeuralCollapseHook._draw

    def timed_draw(*a, **kw):
        start = time.perf_counter()
        try:
            return original_draw(*a, **kw)
        finally:
            draws.append(time.perf_counter() - start)

    NeuralCollapseHook._draw = timed_draw

    with tempfile.TemporaryDirectory() as work_dir:
        cfg = build_cfg(args, work_dir)
        runner = Runner.from_cfg(cfg)
        timer = EpochTimer()
        runner.register_hook(timer)
        cold_hook = ColdMeasurement()
        runner.register_hook(cold_hook)
        alternating = AlternatingMeasurements()
        runner.register_hook(alternating)
        wall = time.perf_counter()
        runner.train()
        wall = time.perf_counter() - wall
        one_hook = nc_hooks(runner)['one-pass']

    n = args.num_samples
    device = torch.cuda.get_device_name() if args.device == 'cuda' else \
        f'cpu, {torch.get_num_threads()} thread(s)'
    print(f'{CONFIG}: {n} generated {args.image_size}x{args.image_size} '
          f'images, {NUM_CLASSES} classes (long-tailed labels), batch '
          f'{args.batch_size}, {device}, {args.epochs} epochs in {wall:.0f} s')
    print(f'{"epoch":>5}{"train s":>9}{"1-pass s":>10}{"pass s":>8}'
          f'{"rest s":>8}{"2-pass s":>10}{"1p/train":>10}{"2p/train":>10}'
          f'{"1p/2p":>7}{"max |diff|":>12}')
    cold = measures['one-pass'][0]
    one, two = measures['one-pass'][1:], measures['two-pass']
    rows = []
    for epoch, (train_s, (one_s, pass_s, *_), (two_s, *_), metrics) in \
            enumerate(zip(timer.train_seconds, one, two,
                          alternating.metrics), 1):
        diff = max_abs_difference(metrics['one-pass'], metrics['two-pass'])
        rows.append((one_s / train_s, two_s / train_s, one_s / two_s, diff))
        print(f'{epoch:>5}{train_s:>9.2f}{one_s:>10.2f}{pass_s:>8.2f}'
              f'{one_s - pass_s:>8.2f}{two_s:>10.2f}{one_s / train_s:>10.1%}'
              f'{two_s / train_s:>10.1%}{one_s / two_s:>7.2f}{diff:>12.1e}')
    med = [statistics.median(r[i] for r in rows) for i in range(3)]
    worst = max(r[3] for r in rows)
    print(f'median: the one-pass hook adds {med[0]:.1%} to an epoch, the '
          f'two-pass one {med[1]:.1%}; one-pass / two-pass time '
          f'{med[2]:.2f} (target <= 0.6); metrics equal to '
          f'{worst:.1e} (target <= 1e-6): '
          f'{"ok" if med[2] <= 0.6 and worst <= 1e-6 else "MISSED"}')
    print(f'  per epoch, amortised: interval=1 adds {med[0]:.1%}, interval=10 '
          f'{med[0] / 10:.1%} (one-pass); two-pass: {med[1]:.1%} and '
          f'{med[1] / 10:.1%}')
    rest = statistics.median(m[0] - m[1] for m in one)
    print(f'  per measurement independent of N: {rest:.2f} s (compute, '
          f'record, figure when drawn); passes over the data: one-pass '
          f'{one_hook.last_passes}')
    print(f'  figure: {len(draws)} drawn by the two hooks in '
          f'{args.epochs + 1} measurements each, median '
          f'{statistics.median(draws):.2f} s per figure (a hook draws at '
          f'its first measurement, every plot_interval='
          f'{one_hook.plot_interval} after it and after training)')
    acc = accumulators[-1]
    state = sum(t.numel() * t.element_size() for t in acc.statistics())
    k, d = acc.num_classes, acc.dim
    formula = 8 * (2 * k + k * d + d * d)
    print(f'memory: accumulator state {state / 1e6:.1f} MB ('
          f'{state / 2**20:.1f} MiB; 8 (2K + K d + d^2) = '
          f'{formula / 1e6:.1f} MB for K={k}, d={d}); features kept for NC4 '
          f'{n * d * 4 / 1e6:.1f} MB (N d float32, {d * 4} B per sample)')
    if args.device == 'cuda':
        peak = max(m[3] - m[2] for m in one)
        print(f'  peak CUDA memory growth of a one-pass measurement: '
              f'{peak / 1e6:.1f} MB')
        return
    peak = max(m[3] - m[2] for m in one)
    growth, start = cold_hook.forward_growth
    print(f'  before training: peak RSS growth of a plain no-grad forward '
          f'pass over the same loader {growth / 1e6:.1f} MB (from '
          f'{start / 1e6:.0f} MB), then of a hook measurement '
          f'{(cold[3] - cold[2]) / 1e6:.1f} MB (its own memory: state, '
          f'kept features, per-batch float64 copies, compute() temporaries)')
    print(f'  peak RSS growth of the after-epoch one-pass measurements: '
          f'{peak / 1e6:.1f} MB (from {max(m[2] for m in one) / 1e6:.0f}'
          f' MB; the allocator reuses what training freed)')


def max_abs_difference(first: dict, second: dict) -> float:
    """Largest absolute difference of two metric dicts (same keys)."""
    if first.keys() != second.keys():
        raise AssertionError(
            f'different metrics: {first.keys() ^ second.keys()}')
    return max(
        abs(first[k] - second[k]) for k in first
        if isinstance(first[k], (int, float)))


if __name__ == '__main__':
    main()
