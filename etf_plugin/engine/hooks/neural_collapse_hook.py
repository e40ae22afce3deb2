"""Measure neural collapse during training and log, save and plot it."""
import os
import os.path as osp
import time
import warnings
from typing import Optional, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.engine.neural_collapse import (NC4_CACHE_MB,
                                              build_nc_dataloader,
                                              collect_nc_statistics,
                                              train_set_with_test_pipeline)
from etf_plugin.functional import NCAccumulator
from etf_plugin.models.utils.features import check_feature_stage
from etf_plugin.utils import classifier_of, num_classes_of, unwrap_model
from etf_plugin.visualization import (figure_to_rgb, latest_record_per_iter,
                                      load_nc_records, nc_curves_figure,
                                      save_nc_records)


@HOOKS.register_module()
class NeuralCollapseHook(ClassCountsConsumer, Hook):
    """Measure the neural-collapse metrics every few epochs.

    After every ``interval`` training epochs, and once at the end of training
    (the only measurement of an iteration-based run), the model runs in eval
    mode over a dataloader (by default the training set with the test
    pipeline) and :class:`~etf_plugin.functional.NCAccumulator` gathers its
    features at ``stage`` (see
    :data:`~etf_plugin.models.utils.features.FEATURE_STAGES`):

    - ``'pre_logits'`` (default): what the classifier sees (for ``ETFHead``,
      after its BN and L2 normalisation; for ``LinearClsHead``, the pooled
      feature);
    - ``'unnormalized'``: the head's feature before any L2 normalisation;
    - ``'normalized'``: that feature L2-normalised, for every head alike;
    - ``'neck'``, ``'backbone.<i>'`` (the i-th backbone stage, pooled) or
      any module name, as ``tools/analysis/nc_eval.py`` takes them.

    Compare methods with and without a normalising neck at ``'unnormalized'``
    or ``'normalized'``: normalisation alone changes NC1. The classifier is
    ``head.etf_vectors`` (``ETFHead``), ``head.class_weight()`` (a cosine
    head) or ``head.fc`` (``LinearClsHead``); the classifier metrics are
    reported at ``'pre_logits'`` only, where the features are the ones it
    classifies. See :mod:`etf_plugin.functional.neural_collapse` for every
    metric. The many/medium/few groups use the training counts handed over
    by ``ClassCountsHook`` (``class_counts`` overrides them).

    One pass over the loader. NC4 compares each sample with the *final*
    class means: each rank keeps the features of its share of the statistics
    pass, ``d`` numbers per sample as the model produced them (``4 d`` bytes
    in float32; 8 KiB per sample at ``d = 2048``), on the model's device,
    and counts NC4 on them once the means are summed over ranks, which gives
    exactly the numbers of a second pass. Above ``nc4_cache_mb`` per rank it
    frees them and takes that second pass instead (``nc4=False`` skips NC4).
    The statistics themselves hold ``8 (2 K + K d + d^2)`` bytes, whatever
    the data size.

    Cost: a measurement is one eval-mode forward pass over the measured set
    plus ``compute`` (``O(K d^2 + K^3)``). Bound it with ``max_samples`` (a
    fixed random subset, the same at every measurement, so the curves stay
    comparable) and ``interval``; docs/neural_collapse.md gives the measured
    cost at ``interval`` 1 and 10.

    Each measurement is

    - logged as scalars ``nc/<metric>`` to the message hub, the runner's
      logger and the visualizer (so every vis backend, e.g. TensorBoard, has
      the curves; step = epoch, or iteration for iteration-based runs);
    - added as a record to ``work_dir/nc_metrics.json`` (one JSON object per
      line, the file replaced atomically, so a crash never leaves half a
      record; a torn line from an older writer is dropped with a warning).
      A resumed run keeps the records up to its checkpoint; a fresh run in
      the same work dir moves an old file aside to ``nc_metrics.json.old``
      rather than mixing two runs' curves;
    - plotted with all earlier records, to ``work_dir/nc_curves.png`` and to
      the visualizer as the image ``nc_curves``, at the first measurement,
      every ``plot_interval`` measurements after it and at the end of
      training. Drawing takes about a second of host time whatever the data
      size, so a figure at every measurement would dominate the cost of
      frequent measurements of a small set; the scalars above carry every
      measurement.

    Distributed runs: every rank measures its share of the data and the
    statistics are summed with ``all_reduce``. The loader always gets a
    sampler without padding (``DefaultSampler``'s ``round_up`` would repeat
    samples), so the result equals a single-process measurement.

    Args:
        interval (int): Measure every ``interval`` epochs. Defaults to 1.
        dataloader (dict, optional): Config of the measured dataloader. Its
            sampler is replaced by a non-padding one. Defaults to the
            runner's ``train_dataloader`` with the pipeline of its
            ``test_dataloader`` (or ``val_dataloader``).
        stage (str): Where the features are taken, see above. Defaults to
            ``'pre_logits'``.
        max_samples (int, optional): Measure a fixed random subset of this
            many samples (the same every time): the way to bound the cost of
            a measurement on a large training set. Defaults to all.
        nc4 (bool): Measure NC4. Defaults to True.
        nc4_cache_mb (float, optional): Budget per rank, in MiB, for the
            features kept for NC4; 0 always takes a second pass, None keeps
            all. Defaults to 1024.
        class_counts (Sequence[int], optional): Training samples per class
            for the many/medium/few-shot metrics, instead of the run's.
        counts_file (str, optional): File with one count per line, instead.
        many_thr (float): Many-shot: more training samples than this.
            Defaults to 100.
        few_thr (float): Few-shot: fewer training samples than this.
            Defaults to 20.
        seed (int): Seed of the ``max_samples`` subset. Defaults to 0.
        out_file (str): JSON-lines file in the work dir. Defaults to
            ``'nc_metrics.json'``.
        plot_file (str, optional): PNG in the work dir; None disables the
            plot (file and visualizer image). Defaults to ``'nc_curves.png'``.
        plot_interval (int): Redraw the figure every ``plot_interval``
            measurements (and after the last one). Defaults to 10.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1,
                 dataloader: Optional[dict] = None,
                 stage: str = 'pre_logits',
                 max_samples: Optional[int] = None,
                 nc4: bool = True,
                 nc4_cache_mb: Optional[float] = NC4_CACHE_MB,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 many_thr: float = 100,
                 few_thr: float = 20,
                 seed: int = 0,
                 out_file: str = 'nc_metrics.json',
                 plot_file: Optional[str] = 'nc_curves.png',
                 plot_interval: int = 10):
        if int(interval) != interval or interval < 1:
            raise ValueError(f'interval must be a positive integer, got '
                             f'{interval}.')
        if int(plot_interval) != plot_interval or plot_interval < 1:
            raise ValueError(f'plot_interval must be a positive integer, got '
                             f'{plot_interval}.')
        if nc4_cache_mb is not None and nc4_cache_mb < 0:
            raise ValueError(f'nc4_cache_mb must be >= 0 or None, got '
                             f'{nc4_cache_mb}.')
        if max_samples is not None and max_samples < 1:
            raise ValueError(f'max_samples must be positive or None, got '
                             f'{max_samples}.')
        self.interval = int(interval)
        self.dataloader_cfg = dataloader
        self.stage = check_feature_stage(stage)
        self.max_samples = max_samples
        self.nc4 = nc4
        self.nc4_cache_mb = nc4_cache_mb
        self.last_passes = 0  # passes over the loader of the last measure
        self.many_thr = many_thr
        self.few_thr = few_thr
        self.seed = seed
        self.out_file = out_file
        self.plot_file = plot_file
        self.plot_interval = int(plot_interval)
        self._measurements = 0  # by this process, for plot_interval
        self._plot_step = None  # step of a record not drawn yet
        self._dataloader = None
        self._last_iter = None
        self._init_class_counts(class_counts, counts_file)

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        json_file = osp.join(runner.work_dir, self.out_file)
        if not osp.exists(json_file):
            return
        if runner.iter == 0:
            os.replace(json_file, json_file + '.old')
            runner.logger.warning(
                f'NeuralCollapseHook: {json_file} is from an earlier run in '
                f'this work dir; moved it to {self.out_file}.old.')
        else:  # resumed: drop what the interrupted run measured after it
            records = load_nc_records(json_file)
            save_nc_records(json_file,
                            [r for r in records if r['iter'] <= runner.iter])

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self.measure(runner, epoch=runner.epoch + 1)

    def after_train(self, runner) -> None:
        # Iteration-based runs, and epoch-based ones that stopped early.
        self.measure(runner, epoch=runner.epoch)
        if self._plot_step is not None:
            self._draw(runner, self._plot_step)

    def measure(self, runner, epoch: int) -> Optional[dict]:
        """Measure, log and save the metrics once per training iteration.

        Args:
            runner (Runner): The runner.
            epoch (int): Completed epochs, for the record.

        Returns:
            dict | None: The metrics, or None if this iteration was already
            measured.
        """
        if runner.iter == self._last_iter:
            return None
        self._last_iter = runner.iter
        model = unwrap_model(runner.model)
        loader = self._get_dataloader(runner)
        classifier, bias = classifier_of(model.head)
        if self.stage != 'pre_logits':
            classifier, bias = None, None
        was_training = model.training
        model.eval()  # BN running statistics must not move
        start = time.time()
        try:
            with torch.no_grad():
                accumulator = self._collect(runner, model, loader, classifier,
                                            bias)
        finally:
            model.train(was_training)
        counts = self.class_counts if self.has_class_counts else None
        metrics = accumulator.compute(classifier, counts, self.many_thr,
                                      self.few_thr)
        self._log(runner, metrics, epoch, seconds=time.time() - start)
        return metrics

    def _collect(self, runner, model, loader,
                 classifier: Optional[torch.Tensor],
                 bias: Optional[torch.Tensor]) -> NCAccumulator:
        """The feature pass (two with NC4 over the cache budget): the
        statistics summed over ranks, NC4 counted."""
        accumulators, passes = collect_nc_statistics(
            model,
            loader, [self.stage],
            model.head.num_classes,
            classifier=classifier if self.nc4 else None,
            bias=bias,
            classifier_stage=self.stage,
            nc4_cache_mb=self.nc4_cache_mb,
            logger=runner.logger.instance_name)
        self.last_passes = passes
        return accumulators[self.stage]

    def _get_dataloader(self, runner):
        if self._dataloader is not None:
            return self._dataloader
        cfg = self.dataloader_cfg
        if cfg is None:
            cfg = train_set_with_test_pipeline(runner.cfg)
        if cfg is None:
            warnings.warn(
                'NeuralCollapseHook: the runner has no train_dataloader '
                'config, so the training set is measured through its '
                'training pipeline (augmentations included). Pass '
                'dataloader=... to the hook to choose.')
            dataset = runner.train_dataloader.dataset
            cfg = dict(
                batch_size=runner.train_dataloader.batch_size, num_workers=0)
        else:
            dataset = None
        self._dataloader = build_nc_dataloader(
            cfg, self.max_samples, self.seed, seed=runner.seed,
            dataset=dataset)
        return self._dataloader

    def _log(self, runner, metrics: dict, epoch: int,
             seconds: float) -> None:
        scalars = {
            f'nc/{key}': value
            for key, value in metrics.items() if isinstance(value, float)
        }
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        by_epoch = runner.log_processor.by_epoch
        step = epoch if by_epoch else runner.iter
        runner.visualizer.add_scalars(scalars, step=step)
        absent = metrics['absent_classes']
        runner.logger.info(
            f'Neural collapse (epoch {epoch}, iter {runner.iter}, stage '
            f'{self.stage}, {metrics["num_samples"]} samples, '
            f'{self.last_passes} pass(es) in {seconds:.1f} s'
            + (f', absent classes {absent}' if absent else '') + '): ' +
            ', '.join(f'{key[3:]}: {value:.4g}'
                      for key, value in scalars.items()))
        if not is_main_process():
            return
        record = dict(epoch=epoch, iter=runner.iter, stage=self.stage,
                      **metrics)
        json_file = osp.join(runner.work_dir, self.out_file)
        # Every valid line kept (a resumed run's repeats included); the
        # figure shows the latest record of each iteration.
        records = load_nc_records(json_file, latest_per_iter=False) \
            if osp.exists(json_file) else []
        records.append(record)
        save_nc_records(json_file, records)
        if self.plot_file is None:
            return
        self._measurements += 1
        if (self._measurements - 1) % self.plot_interval == 0:
            self._draw(runner, step, records)
        else:
            self._plot_step = step

    def _draw(self, runner, step: int, records=None) -> None:
        """Plot the records (read from the JSON file if not given) to the
        PNG and the visualizer."""
        self._plot_step = None
        json_file = osp.join(runner.work_dir, self.out_file)
        if records is None:
            records = load_nc_records(json_file, latest_per_iter=False)
        records = latest_record_per_iter(records)
        by_epoch = runner.log_processor.by_epoch
        num_classes = num_classes_of(runner.model)
        # The records are saved; a figure that fails to draw (a missing
        # font, a full disk) must not end a long training run.
        try:
            figure = nc_curves_figure(
                {osp.basename(osp.normpath(runner.work_dir)): records},
                x_key='epoch' if by_epoch else 'iter',
                num_classes=num_classes)
            figure.savefig(osp.join(runner.work_dir, self.plot_file), dpi=100)
            runner.visualizer.add_image('nc_curves', figure_to_rgb(figure),
                                        step=step)
        except Exception as error:  # noqa: BLE001
            runner.logger.warning(
                f'NeuralCollapseHook: the NC figure was not drawn ({error!r});'
                f' the records are in {json_file}. Set plot_file=None to '
                f'skip the figure.')
