"""Measure neural collapse during training and log, save and plot it."""
import copy
import json
import os.path as osp
import warnings
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import DATASETS
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS
from torch import nn
from torch.utils.data import Sampler

from etf_plugin.datasets.long_tail import read_gt_labels
from etf_plugin.functional import NCAccumulator
from etf_plugin.visualization import load_nc_records, plot_nc_curves


@HOOKS.register_module()
class NeuralCollapseHook(Hook):
    """Measure the neural-collapse metrics every few epochs.

    After every ``interval`` training epochs, and once at the end of training
    (the only measurement of an iteration-based run), the model runs in eval
    mode over a dataloader (by default the training set with the test
    pipeline) and :class:`~etf_plugin.functional.NCAccumulator` gathers the
    head's ``pre_logits`` features: the features the classifier sees (for
    ``ETFHead``, after its BN and normalisation).
    The classifier is ``head.etf_vectors`` (``ETFHead``) or ``head.fc``
    (``LinearClsHead``), so an ETF + DR run and a cross-entropy baseline are
    measured the same way. See :mod:`etf_plugin.functional.neural_collapse`
    for every metric.

    NC4 compares each sample with the *final* class means, so it costs a
    second pass over the loader (``nc4=False`` skips it).

    Each measurement is

    - logged as scalars ``nc/<metric>`` to the message hub, the runner's
      logger and the visualizer (so every vis backend, e.g. TensorBoard, has
      the curves; step = epoch, or iteration for iteration-based runs);
    - appended as one JSON line to ``work_dir/nc_metrics.json`` (earlier
      records, e.g. from before a resume, are kept);
    - plotted with all earlier records into ``work_dir/nc_curves.png``.

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
        max_samples (int, optional): Measure a fixed random subset of this
            many samples (the same every time). Defaults to all.
        nc4 (bool): Run the second pass for NC4. Defaults to True.
        class_counts (Sequence[int], optional): Training samples per class
            for the many/medium/few-shot metrics. Defaults to the counts of
            the runner's training set, which are wrong when a wrapper repeats
            samples (e.g. ``ClassBalancedDataset``): pass them then.
        many_thr (float): Many-shot: more training samples than this.
            Defaults to 100.
        few_thr (float): Few-shot: fewer training samples than this.
            Defaults to 20.
        seed (int): Seed of the ``max_samples`` subset. Defaults to 0.
        out_file (str): JSON-lines file in the work dir. Defaults to
            ``'nc_metrics.json'``.
        plot_file (str, optional): PNG in the work dir; None disables the
            plot. Defaults to ``'nc_curves.png'``.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1,
                 dataloader: Optional[dict] = None,
                 max_samples: Optional[int] = None,
                 nc4: bool = True,
                 class_counts: Optional[Sequence[int]] = None,
                 many_thr: float = 100,
                 few_thr: float = 20,
                 seed: int = 0,
                 out_file: str = 'nc_metrics.json',
                 plot_file: Optional[str] = 'nc_curves.png'):
        if int(interval) != interval or interval < 1:
            raise ValueError(f'interval must be a positive integer, got '
                             f'{interval}.')
        if max_samples is not None and max_samples < 1:
            raise ValueError(f'max_samples must be positive or None, got '
                             f'{max_samples}.')
        self.interval = int(interval)
        self.dataloader_cfg = dataloader
        self.max_samples = max_samples
        self.nc4 = nc4
        self.class_counts = class_counts
        self.many_thr = many_thr
        self.few_thr = few_thr
        self.seed = seed
        self.out_file = out_file
        self.plot_file = plot_file
        self._dataloader = None
        self._last_iter = None
        self._read_class_counts = False

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or \
                self.is_last_train_epoch(runner):
            self.measure(runner, epoch=runner.epoch + 1)

    def after_train(self, runner) -> None:
        # Iteration-based runs, and epoch-based ones that stopped early.
        self.measure(runner, epoch=runner.epoch)

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
        model = _unwrap(runner.model)
        loader = self._get_dataloader(runner)
        classifier, bias = classifier_of(model.head)
        was_training = model.training
        model.eval()  # BN running statistics must not move
        try:
            with torch.no_grad():
                accumulator = self._accumulate(model, loader,
                                               model.head.num_classes,
                                               classifier)
                if self.nc4 and classifier is not None:
                    self._accumulate_ncc(model, loader, accumulator,
                                         classifier, bias)
        finally:
            model.train(was_training)
        metrics = accumulator.compute(classifier,
                                      self._get_class_counts(runner),
                                      self.many_thr, self.few_thr)
        self._log(runner, metrics, epoch)
        return metrics

    def _features(self, model,
                  data_batch) -> Tuple[torch.Tensor, torch.Tensor]:
        data = model.data_preprocessor(data_batch, False)
        feats = model.extract_feat(data['inputs'], stage='pre_logits')
        if isinstance(feats, (tuple, list)):
            feats = feats[-1]
        labels = torch.cat([s.gt_label for s in data['data_samples']])
        return feats.flatten(1), labels

    def _accumulate(self, model, loader, num_classes: int,
                    classifier: Optional[torch.Tensor]) -> NCAccumulator:
        """First pass: class sums and second moment, summed over ranks."""
        accumulator = None
        if classifier is not None:
            accumulator = NCAccumulator(
                num_classes, classifier.shape[1], device=classifier.device)
        for data_batch in _progress(loader):
            feats, labels = self._features(model, data_batch)
            if accumulator is None:
                accumulator = NCAccumulator(
                    num_classes, feats.shape[1], device=feats.device)
            accumulator.update(feats, labels)
        if accumulator is None or get_dist_info()[1] > 1:
            # A rank without a single batch still learns the feature size.
            dim = torch.tensor([accumulator.dim if accumulator else 0])
            all_reduce(dim, op='max')
            if accumulator is None:
                if dim.item() == 0:
                    raise ValueError('The neural-collapse dataloader is '
                                     'empty; check its dataset.')
                accumulator = NCAccumulator(
                    num_classes,
                    dim.item(),
                    device=next(model.parameters()).device)
        accumulator.all_reduce()
        return accumulator

    def _accumulate_ncc(self, model, loader, accumulator: NCAccumulator,
                        classifier: torch.Tensor,
                        bias: Optional[torch.Tensor]) -> None:
        """Second pass: NC4 against the final, all-reduced class means."""
        for data_batch in _progress(loader):
            feats, _ = self._features(model, data_batch)
            accumulator.update_ncc(feats, classifier, bias)
        accumulator.all_reduce_ncc()

    def _get_dataloader(self, runner):
        if self._dataloader is not None:
            return self._dataloader
        cfg = self.dataloader_cfg
        if cfg is None:
            cfg = _train_set_with_test_pipeline(runner.cfg)
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
            cfg = copy.deepcopy(cfg)
            dataset = cfg['dataset']
            if isinstance(dataset, dict):
                dataset = DATASETS.build(dataset)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        cfg.pop('batch_sampler', None)
        cfg.update(
            drop_last=False,  # every sample counts, the last batch included
            dataset=dataset,
            sampler=SubsetSampler(len(dataset), self.max_samples, self.seed))
        self._dataloader = Runner.build_dataloader(cfg, seed=runner.seed)
        return self._dataloader

    def _get_class_counts(self, runner) -> Optional[np.ndarray]:
        """Training counts per class: given, or read once from the train
        set's annotations."""
        if self.class_counts is None and not self._read_class_counts:
            self._read_class_counts = True
            try:
                labels = read_gt_labels(runner.train_dataloader.dataset)
            except (TypeError, ValueError, AttributeError) as error:
                warnings.warn(f'NeuralCollapseHook: no many/medium/few-shot '
                              f'metrics, the training labels are unreadable '
                              f'({error}). Pass class_counts=... to the hook.')
            else:
                self.class_counts = np.bincount(
                    labels, minlength=_unwrap(runner.model).head.num_classes)
        return self.class_counts

    def _log(self, runner, metrics: dict, epoch: int) -> None:
        scalars = {
            f'nc/{key}': value
            for key, value in metrics.items() if isinstance(value, float)
        }
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        step = epoch if runner.log_processor.by_epoch else runner.iter
        runner.visualizer.add_scalars(scalars, step=step)
        absent = metrics['absent_classes']
        runner.logger.info(
            f'Neural collapse (epoch {epoch}, iter {runner.iter}, '
            f'{metrics["num_samples"]} samples'
            + (f', absent classes {absent}' if absent else '') + '): ' +
            ', '.join(f'{key[3:]}: {value:.4g}'
                      for key, value in scalars.items()))
        if not is_main_process():
            return
        record = dict(epoch=epoch, iter=runner.iter, **metrics)
        json_file = osp.join(runner.work_dir, self.out_file)
        with open(json_file, 'a') as f:
            f.write(json.dumps(record) + '\n')
        if self.plot_file is not None:
            plot_nc_curves({osp.basename(osp.normpath(runner.work_dir)):
                            load_nc_records(json_file)},
                           osp.join(runner.work_dir, self.plot_file),
                           x_key='epoch' if runner.log_processor.by_epoch
                           else 'iter')


def classifier_of(
    head: nn.Module
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The classifier rows and bias of a head, if it has a known classifier.

    Args:
        head (nn.Module): ``ETFHead`` (buffer ``etf_vectors``) or a head with
            an ``nn.Linear`` ``fc`` (``LinearClsHead``).

    Returns:
        tuple: ``(weight (K, d), bias (K,) or None)``, or ``(None, None)``
        for other heads, which get no classifier metrics.
    """
    etf = getattr(head, 'etf_vectors', None)
    if isinstance(etf, torch.Tensor):
        return etf, None
    fc = getattr(head, 'fc', None)
    if isinstance(fc, nn.Linear):
        return fc.weight, fc.bias
    return None, None


class SubsetSampler(Sampler):
    """This rank's share of the whole dataset or a fixed subset, no padding.

    Unlike ``DefaultSampler(round_up=True)`` it repeats no sample, so sums
    reduced over ranks count every sample exactly once.

    Args:
        dataset_size (int): Length of the dataset.
        max_samples (int, optional): Size of the subset, drawn once with
            ``seed`` and identical on every rank. None means all samples.
        seed (int): Seed of the subset. Defaults to 0.
        rank (int, optional): This process's rank. Defaults to the current
            distributed rank.
        world_size (int, optional): Number of ranks. Defaults to the current
            distributed world size.
    """

    def __init__(self,
                 dataset_size: int,
                 max_samples: Optional[int] = None,
                 seed: int = 0,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        indices = torch.arange(dataset_size)
        if max_samples is not None and max_samples < dataset_size:
            generator = torch.Generator().manual_seed(seed)
            chosen = torch.randperm(dataset_size, generator=generator)
            indices = chosen[:max_samples].sort().values
        dist_rank, dist_world_size = get_dist_info()
        rank = dist_rank if rank is None else rank
        world_size = dist_world_size if world_size is None else world_size
        self.indices: List[int] = indices[rank::world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _train_set_with_test_pipeline(cfg) -> Optional[dict]:
    """The train dataloader config with the test (or val) pipeline."""
    train = cfg.get('train_dataloader')
    if not isinstance(train, dict) or not isinstance(
            train.get('dataset'), dict):
        return None
    train = copy.deepcopy(train)
    test = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    test_dataset = _innermost(test['dataset']) if isinstance(
        test, dict) and isinstance(test.get('dataset'), dict) else None
    if test_dataset is None or 'pipeline' not in test_dataset:
        warnings.warn('NeuralCollapseHook: no test or val pipeline in the '
                      'config, so the training pipeline is used.')
    else:
        _innermost(train['dataset'])['pipeline'] = copy.deepcopy(
            test_dataset['pipeline'])
    return train


def _innermost(dataset_cfg: dict) -> dict:
    # Wrappers (LongTailDataset, ClassBalancedDataset, ...) hold the dataset
    # that owns the pipeline under 'dataset'.
    while 'pipeline' not in dataset_cfg and isinstance(
            dataset_cfg.get('dataset'), dict):
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def _progress(loader):
    """Iterate over ``loader`` with a progress bar on rank 0 only."""
    bar = ProgressBar(len(loader)) if is_main_process() else None
    for data_batch in loader:
        yield data_batch
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.file.write('\n')
