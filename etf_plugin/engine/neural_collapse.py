"""Streaming neural-collapse statistics of a model over a dataloader: the one
loop that ``NeuralCollapseHook`` and ``tools/analysis/nc_eval.py`` share."""
import contextlib
import sys
from typing import Dict, Iterable, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, get_dist_info, is_main_process
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from torch import nn

from etf_plugin.functional import NCAccumulator
from etf_plugin.models.utils.features import StageFeatures

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
