"""Streaming neural-collapse statistics of a model over a dataloader: the one
loop that ``NeuralCollapseHook`` and ``tools/analysis/nc_eval.py`` share."""
import contextlib
import copy
import sys
import warnings
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from mmengine.logging import print_log
from mmengine.registry import DATASETS
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch import nn

from etf_plugin.datasets.samplers import SubsetSampler
from etf_plugin.datasets.utils import innermost_dataset_cfg
from etf_plugin.functional import NCAccumulator
from etf_plugin.models.utils.features import StageFeatures, backbone_stages
from etf_plugin.utils import classifier_of, num_classes_of

# Default budget, per rank, for the classifier-stage features kept from the
# statistics pass for NC4 (MiB).
NC4_CACHE_MB = 1024


@contextlib.contextmanager
def one_cpu_thread(device: torch.device):
    """Run the block with torch's intra-op pool set to one thread when
    ``device`` is the CPU (no-op elsewhere or when it has one already); the
    previous setting is restored whatever happens. The setting is process
    wide: another Python thread running torch ops meanwhile would run them
    on one thread too."""
    threads = torch.get_num_threads()
    if torch.device(device).type != 'cpu' or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def progress(loader: Iterable, what: str, logger: str = 'current'):
    """Iterate over ``loader``, showing progress on rank 0: a progress bar on
    a terminal, or one log line per quarter otherwise, so that a redirected
    stdout holds no bar fragments."""
    total = len(loader)
    if not is_main_process() or total < 20:  # seconds: no report needed
        yield from loader
        return
    if sys.stdout.isatty():
        bar = ProgressBar(total)
        for data_batch in loader:
            yield data_batch
            bar.update()
        bar.file.write('\n')
        return
    marks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)}
    for done, data_batch in enumerate(loader, 1):
        yield data_batch
        if done in marks:
            print_log(f'Neural collapse ({what}): {done}/{total} batches',
                      logger=logger)


def collect_nc_statistics(
        model: nn.Module,
        loader: Iterable,
        stages: Sequence[str],
        num_classes: int,
        classifier: Optional[torch.Tensor] = None,
        bias: Optional[torch.Tensor] = None,
        classifier_stage: str = 'pre_logits',
        nc4_cache_mb: Optional[float] = NC4_CACHE_MB,
        logger: str = 'current') -> Tuple[Dict[str, NCAccumulator], int]:
    """Neural-collapse statistics of every stage, summed over ranks.

    One forward pass per batch gives the features of every stage
    (:class:`~etf_plugin.models.utils.features.StageFeatures`), each
    streamed into its own :class:`~etf_plugin.functional.NCAccumulator`.
    With a ``classifier``, NC4 is counted at ``classifier_stage`` against the
    final, all-reduced class means. For that, this rank keeps the features of
    that stage from the statistics pass as the model produced them (``d``
    numbers per sample in the features' dtype, e.g. ``4 d`` bytes in
    float32, on the features' device), as long as they fit in
    ``nc4_cache_mb``; so NC4 needs no second pass and equals the two-pass
    result exactly (the same features, the same arithmetic). Above the budget
    the kept features are dropped and a second pass over ``loader``
    recomputes them.

    Every sample must be seen by exactly one rank (a sampler without
    padding). ``NCAccumulator.update`` runs on one CPU thread: it is a few
    memory-bound passes over the batch, whose parallel regions stall on a
    loaded machine (``benchmarks/nc_accumulator.py``).

    Args:
        model (nn.Module): An (unwrapped) ``ImageClassifier`` in eval mode;
            call under ``torch.no_grad()``.
        loader (Iterable): Batches of the measured data.
        stages (Sequence[str]): Stage names (see ``StageFeatures``).
        num_classes (int): Number of classes ``K``.
        classifier (torch.Tensor, optional): ``(K, d)`` classifier rows of
            ``classifier_stage``'s features; enables NC4.
        bias (torch.Tensor, optional): ``(K,)`` classifier bias.
        classifier_stage (str): The stage the classifier classifies.
            Defaults to ``'pre_logits'``.
        nc4_cache_mb (float, optional): Budget per rank for the kept
            features, in MiB; 0 always takes the second pass, None keeps
            them all. Defaults to :data:`NC4_CACHE_MB`.
        logger (str): Logger of the progress lines. Defaults to the current
            one.

    Returns:
        tuple[dict, int]: Stage -> accumulator (NC4 counted at
        ``classifier_stage`` when a classifier was given), and the number of
        passes over ``loader`` (1 or 2).
    """
    stages = list(stages)
    want_ncc = classifier is not None and classifier_stage in stages
    budget = float('inf') if nc4_cache_mb is None else nc4_cache_mb * 2**20
    kept, kept_bytes = [], 0
    accumulators: Dict[str, NCAccumulator] = {}
    with StageFeatures(model, stages) as extractor:
        for data_batch in progress(loader, 'features', logger):
            feats, labels = extractor(data_batch)
            for stage in stages:
                batch = feats[stage]
                if stage not in accumulators:
                    accumulators[stage] = NCAccumulator(
                        num_classes, batch.shape[1], device=batch.device)
                with one_cpu_thread(batch.device):
                    accumulators[stage].update(batch, labels)
            if want_ncc and kept is not None:
                batch = feats[classifier_stage]
                kept_bytes += batch.numel() * batch.element_size()
                if kept_bytes <= budget:
                    kept.append(batch)
                else:  # over the budget: free them, take the second pass
                    kept = None
    accumulators = _reduce(model, accumulators, stages, num_classes)
    passes = 1
    if want_ncc:
        accumulator = accumulators[classifier_stage]
        # Every rank must agree on a second pass (it all-reduces after it).
        overflow = torch.tensor([int(kept is None)])
        all_reduce(overflow, op='max')
        if overflow.item():
            passes, kept = 2, _features_again(model, loader,
                                              classifier_stage, logger)
        for batch in kept:
            accumulator.update_ncc(batch, classifier, bias)
        for stat in accumulator.ncc_statistics():
            all_reduce(stat, op='sum')
    return accumulators, passes


def _features_again(model, loader, stage: str, logger: str):
    """The second pass: ``stage``'s features batch by batch."""
    with StageFeatures(model, [stage]) as extractor:
        for data_batch in progress(loader, 'NC4', logger):
            yield extractor(data_batch)[0][stage]


def _reduce(model, accumulators: Dict[str, NCAccumulator],
            stages: Sequence[str],
            num_classes: int) -> Dict[str, NCAccumulator]:
    """Sum the statistics over ranks; a rank without a single batch learns
    the feature sizes from the others."""
    if len(accumulators) < len(stages) or get_dist_info()[1] > 1:
        dims = torch.tensor(
            [accumulators[s].dim if s in accumulators else 0 for s in stages])
        all_reduce(dims, op='max')
        if not dims.all():
            raise ValueError('The neural-collapse dataloader is empty; check '
                             'its dataset.')
        device = next(model.parameters()).device
        for stage, dim in zip(stages, dims.tolist()):
            if stage not in accumulators:
                accumulators[stage] = NCAccumulator(
                    num_classes, dim, device=device)
    for stage in stages:
        for stat in accumulators[stage].statistics():
            all_reduce(stat, op='sum')
    return accumulators


def train_set_with_test_pipeline(cfg) -> Optional[dict]:
    """The ``train_dataloader`` config with the test (or val) pipeline put
    in its innermost dataset, so that wrappers (``LongTailDataset``, ...)
    keep the training subset and its shot groups; None without one."""
    train = cfg.get('train_dataloader')
    if not isinstance(train, dict) or not isinstance(
            train.get('dataset'), dict):
        return None
    train = copy.deepcopy(train)
    test = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    test_dataset = innermost_dataset_cfg(test['dataset']) if isinstance(
        test, dict) and isinstance(test.get('dataset'), dict) else None
    if test_dataset is None or 'pipeline' not in test_dataset:
        warnings.warn('Neural collapse: no test or val pipeline in the '
                      'config, so the training pipeline is used.')
    else:
        innermost_dataset_cfg(train['dataset'])['pipeline'] = copy.deepcopy(
            test_dataset['pipeline'])
    return train


def build_nc_dataloader(loader_cfg: dict,
                        max_samples: Optional[int] = None,
                        subset_seed: int = 0,
                        seed: Optional[int] = None,
                        dataset=None):
    """A dataloader for NC statistics: every sample (or a fixed random
    subset of ``max_samples``, drawn with ``subset_seed``, the same on
    every call) seen by exactly one rank, the last batch included.

    Args:
        loader_cfg (dict): A dataloader config; its sampler is replaced by
            :class:`~etf_plugin.datasets.SubsetSampler`.
        max_samples (int, optional): Size of the subset. Defaults to all.
        subset_seed (int): Seed of the subset. Defaults to 0.
        seed (int, optional): Seed of the loader's workers.
        dataset (optional): A built dataset to use instead of
            ``loader_cfg['dataset']``.
    """
    cfg = copy.deepcopy(dict(loader_cfg))
    if dataset is None:
        dataset = cfg['dataset']
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    cfg.pop('batch_sampler', None)
    cfg.update(
        drop_last=False,  # every sample counts, the last batch included
        dataset=dataset,
        sampler=SubsetSampler(len(dataset), max_samples, subset_seed))
    return Runner.build_dataloader(cfg, seed=seed)


def default_stages(model: nn.Module) -> List[str]:
    """Every stage :func:`collect_nc_statistics` can read, in depth order:
    each backbone stage, the neck (if any) and ``'pre_logits'``."""
    stages = [
        f'backbone.{i}' for i in range(len(backbone_stages(model.backbone)))
    ]
    if getattr(model, 'neck', None) is not None:
        stages.append('neck')
    return stages + ['pre_logits']


def evaluate_neural_collapse(model: nn.Module,
                             loaders: Dict[str, Iterable],
                             stages: Sequence[str],
                             class_counts: Optional[Sequence[int]] = None,
                             many_thr: float = 100,
                             few_thr: float = 20,
                             nc4_cache_mb: Optional[float] = NC4_CACHE_MB,
                             logger: str = 'current') -> Dict[str, dict]:
    """The NC metrics of every stage on every split, one forward pass per
    batch for all stages.

    The classifier metrics, NC3 and NC4 are computed at ``'pre_logits'``
    (the features the classifier sees) when the head has a classifier
    (``etf_plugin.utils.classifier_of``); the shot-group metrics with
    ``class_counts``.

    Args:
        model (nn.Module): An (unwrapped) ``ImageClassifier``.
        loaders (dict): Split name -> dataloader (every sample on exactly
            one rank, e.g. from :func:`build_nc_dataloader`).
        stages (Sequence[str]): Stage names.
        class_counts (Sequence[int], optional): Training samples per class.
        many_thr (float): Many-shot threshold. Defaults to 100.
        few_thr (float): Few-shot threshold. Defaults to 20.
        nc4_cache_mb (float, optional): See :func:`collect_nc_statistics`.
        logger (str): Logger of the progress lines.

    Returns:
        dict: ``{split: {stage: metrics}}``, each ``metrics`` as
        :meth:`~etf_plugin.functional.NCAccumulator.compute` returns it,
        plus ``dim`` (the feature size).
    """
    classifier, bias = classifier_of(model.head)
    num_classes = num_classes_of(model)
    was_training = model.training
    model.eval()
    results = {}
    try:
        for split, loader in loaders.items():
            with torch.no_grad():
                accumulators, _ = collect_nc_statistics(
                    model, loader, stages, num_classes, classifier, bias,
                    nc4_cache_mb=nc4_cache_mb, logger=logger)
            results[split] = {}
            for stage in stages:
                accumulator = accumulators[stage]
                weight = classifier if stage == 'pre_logits' else None
                metrics = accumulator.compute(weight, class_counts, many_thr,
                                              few_thr)
                results[split][stage] = dict(dim=accumulator.dim, **metrics)
    finally:
        model.train(was_training)
    return results
