"""``LabelShiftAccuracy``: accuracy under forward- and backward-long-tailed
test label distributions, from a balanced test set."""
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.label_shift import (DEFAULT_SHIFT_RATIOS,
                                               long_tail_test_prior,
                                               shift_name, shifted_accuracy)
from etf_plugin.functional.logit_adjustment import adjust_logits, log_prior
from etf_plugin.functional.long_tail import class_sizes
from .scores import batch_labels_and_scores

ADJUST_FROM = ('train', 'uniform')


@METRICS.register_module()
class LabelShiftAccuracy(ClassCountsConsumer, BaseMetric):
    """Top-1 accuracy the model would have if the test labels were
    long-tailed, forward or backward, at several imbalance ratios: the
    "test-agnostic" evaluation of LADE and SADE, without new data.

    With ``a_k`` the accuracy on the test images of class ``k`` and ``p`` a
    test class prior, the accuracy under ``p`` is exactly
    ``sum_k p_k * a_k`` (label shift changes how often classes occur, not
    their images); ``a_k`` comes from the balanced test set. The priors
    ``p`` follow the training counts' order: ``ratio = 50`` is forward
    (``p`` of the largest training class 50 times that of the smallest),
    ``1/50`` backward, ``1`` uniform (which equals ``lt/macro``). Formula
    and tie rule: :mod:`etf_plugin.functional.label_shift`.

    Reports, in percent, under the prefix ``lt_shift`` by default:

    - ``forward_50``, ..., ``uniform``, ..., ``backward_50``: one per ratio.
    - with ``logit_adjust=True``, also ``la_forward_50``, ...: the accuracy
      of post-hoc logit adjustment towards the *known* test prior (Menon et
      al. 2021; the plug-in their theory prescribes), every sample scored
      with ``log s(x) + log p_test - log p_source`` (``s`` = ``pred_score``;
      :func:`~etf_plugin.functional.logit_adjustment.adjust_logits`) and
      the per-class accuracies recomputed. ``adjust_from='train'`` takes the
      scores as estimates under the training prior (a model trained with
      plain cross-entropy); ``'uniform'`` as already balanced (a
      logit-adjusted loss, ``PostHocLogitAdjustedHead``), which would
      otherwise be corrected twice. The scores of ``ETFHead`` and
      ``CosineClsHead`` are a softmax of scaled cosines, not estimated
      probabilities, so the adjustment is a heuristic there.

    Every evaluation also adds a figure, ``lt_shift``, to the run's
    visualizer (the work dir's ``vis_data/vis_image`` and TensorBoard):
    accuracy against test imbalance, with the training distribution (its
    largest-over-smallest count ratio and the accuracy under its own prior)
    marked.

    Distributed evaluation: ``process`` keeps the label and the predictions
    of every sample (``1 + len(ratios)`` integers with ``logit_adjust``),
    so MMEngine's ``collect_results`` drops the sampler's padding exactly.

    Example config::

        val_evaluator = [
            dict(type='LongTailAccuracy'),
            dict(type='LabelShiftAccuracy', logit_adjust=True),
        ]

    Args:
        ratios (Sequence[float]): Test imbalance ratios. Defaults to
            ``(50, 25, 10, 5, 2, 1, 1/2, 1/5, 1/10, 1/25, 1/50)``.
        logit_adjust (bool): Also report post-hoc logit adjustment towards
            each test prior. Needs ``pred_score``. Defaults to False.
        adjust_from (str): The prior the scores are taken to carry,
            ``'train'`` or ``'uniform'``. Defaults to ``'train'``.
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the run's.
        counts_file (str, optional): Path of a counts file, instead.
        plot (bool): Add the figure to the visualizer. Defaults to True.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to None,
            i.e. ``'lt_shift'``.
        collect_dir (str, optional): Directory used to collect results on the
            CPU. Defaults to None.
    """
    default_prefix: Optional[str] = 'lt_shift'

    def __init__(self,
                 ratios: Sequence[float] = DEFAULT_SHIFT_RATIOS,
                 logit_adjust: bool = False,
                 adjust_from: str = 'train',
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 plot: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.ratios = tuple(float(r) for r in ratios)
        names = [shift_name(r) for r in self.ratios]  # checks the ratios
        if not names or len(set(names)) != len(names):
            raise ValueError(f'ratios must be distinct positive numbers, got '
                             f'{list(ratios)}.')
        if adjust_from not in ADJUST_FROM:
            raise ValueError(f'adjust_from must be one of {ADJUST_FROM}, got '
                             f'{adjust_from!r}.')
        self.logit_adjust = bool(logit_adjust)
        self.adjust_from = adjust_from
        self.plot = plot
        self._log_prior_shifts = None
        self._init_class_counts(class_counts, counts_file)

    def _on_class_counts(self, counts: np.ndarray) -> None:
        if not self.logit_adjust:
            return
        source = log_prior(counts) if self.adjust_from == 'train' else 0
        # log p_test - log p_source, one row per ratio (the test prior is
        # already a distribution, not counts).
        self._log_prior_shifts = torch.stack([
            torch.from_numpy(np.log(long_tail_test_prior(counts, ratio))) -
            source
            for ratio in self.ratios
        ])

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the label and the (adjusted) top-1 predictions of every
        sample.

        Args:
            data_batch: A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): The model outputs of the batch.
        """
        if not data_samples:
            return
        labels, scores, predictions = batch_labels_and_scores(
            data_samples, type(self).__name__, need_scores=self.logit_adjust)
        columns = [labels, predictions]
        if self.logit_adjust:
            self._require_class_counts()
            log_scores = scores.double().clamp_min(
                torch.finfo(torch.float64).tiny).log()
            columns += [
                adjust_logits(log_scores, shift, 1.0).argmax(1)
                for shift in self._log_prior_shifts
            ]
        self.results.extend(map(tuple, torch.stack(columns, 1).tolist()))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """Compute the shifted accuracies from all ranks' records and draw
        the figure.

        Args:
            results (list[tuple]): Records from :meth:`process`.

        Returns:
            dict: The metrics described in the class docstring.
        """
        class_counts = self.class_counts
        if not results:
            return {}
        records = np.asarray(results, dtype=np.int64)
        labels = records[:, 0]
        test_sizes = class_sizes(labels, len(class_counts))
        priors = [long_tail_test_prior(class_counts, r) for r in self.ratios]
        plain = _per_class_accuracy(labels, records[:, 1], test_sizes)
        curves = {'': {
            ratio: shifted_accuracy(plain, prior) * 100
            for ratio, prior in zip(self.ratios, priors)
        }}
        if self.logit_adjust:
            # One column of adjusted predictions per ratio, from column 2.
            curves['la_'] = {
                ratio: shifted_accuracy(
                    _per_class_accuracy(labels, records[:, 2 + i],
                                        test_sizes), prior) * 100
                for i, (ratio, prior) in enumerate(zip(self.ratios, priors))
            }
        metrics = {
            f'{variant}{shift_name(ratio)}': value
            for variant, curve in curves.items()
            for ratio, value in curve.items()
        }
        if self.plot:
            self._add_figure(plain, curves, class_counts)
        return metrics

    def _add_figure(self, accuracy: np.ndarray, curves: dict,
                    class_counts: np.ndarray) -> None:
        # Imported here: the figure module pulls in matplotlib.
        from etf_plugin.visualization.long_tail_eval import (
            add_figure_to_visualizer, label_shift_figure)
        positive = class_counts[class_counts > 0]
        train_ratio = positive.max() / positive.min()
        train_prior = class_counts / class_counts.sum()
        named = {'model': curves['']}
        points = {'model': shifted_accuracy(accuracy, train_prior) * 100}
        if 'la_' in curves:
            named['logit-adjusted to the test prior'] = curves['la_']
        try:
            figure = label_shift_figure(
                named, train_ratio=train_ratio, train_points=points,
                title='Accuracy under shifted test label distributions')
            add_figure_to_visualizer('lt_shift', figure)
        except Exception as error:  # noqa: BLE001
            # The numbers are computed; a figure that fails to draw (no
            # matplotlib, a missing font) must not end the evaluation.
            print_log(
                f'LabelShiftAccuracy: the figure was not drawn ({error!r}); '
                f'set plot=False to skip it.', logger='current',
                level=30)


def _per_class_accuracy(labels: np.ndarray, predicted: np.ndarray,
                        test_sizes: np.ndarray) -> np.ndarray:
    """Per-class accuracy as a fraction, NaN for absent classes."""
    correct = np.bincount(
        labels, weights=predicted == labels, minlength=len(test_sizes))
    accuracy = np.full(len(test_sizes), np.nan)
    present = test_sizes > 0
    accuracy[present] = correct[present] / test_sizes[present]
    return accuracy
