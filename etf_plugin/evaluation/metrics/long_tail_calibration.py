"""``LongTailCalibration``: expected and maximum calibration error and
negative log-likelihood, overall and per many/medium/few-shot group."""
from typing import List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.calibration import (calibration_bin_sums,
                                               calibration_errors,
                                               true_class_nll)
from etf_plugin.functional.long_tail import shot_groups
from .scores import batch_labels_and_scores


@METRICS.register_module()
class LongTailCalibration(ClassCountsConsumer, BaseMetric):
    """Calibration of the class scores a model predicts, for a long-tailed
    task; use it beside ``LongTailAccuracy``.

    Reports, under the prefix ``calib`` by default:

    - ``ece``: expected calibration error of the top-1 confidence, in
      percent, over ``num_bins`` equal-width bins (15 by default, as in
      Guo et al. 2017 and the long-tail papers that report it, e.g. MiSLAS);
      the binning and formula are in
      :mod:`etf_plugin.functional.calibration`.
    - ``mce``: maximum calibration error (largest gap of a non-empty bin),
      in percent.
    - ``nll``: mean negative log-likelihood of the true class, in nats.
    - ``ece_many``, ``mce_many``, ``nll_many``, and the same for ``medium``
      and ``few``: over the test samples whose *true* class is in that shot
      group (groups as in ``LongTailAccuracy``, from the training counts
      that ``ClassCountsHook`` hands over); a group without test samples is
      not reported.

    What is calibrated is ``pred_score``, the scores the head's ``predict``
    returns: the softmax of the logits of ``LinearClsHead`` and its
    variants (after the correction of ``PostHocLogitAdjustedHead`` or
    ``TauNormalizedHead``). ``ETFHead`` and ``CosineClsHead`` have no
    probabilistic output of their own (a dot-regression loss fits cosines,
    not probabilities): their ``pred_score`` is the softmax of
    ``logit_scale * cosine``, so their ECE and NLL measure that fixed
    temperature (``logit_scale``, 10 by default) as much as the features. A
    temperature fitted on held-out data would change them without changing
    a single prediction.

    Distributed evaluation: ``process`` keeps four numbers per sample
    (label, confidence, correctness, NLL), not the ``K`` scores, and the
    per-bin sums are formed from all ranks' records, so that MMEngine's
    ``collect_results`` can drop the sampler's padding exactly (sums formed
    per rank would count the padded samples twice).

    Example config::

        val_evaluator = [
            dict(type='LongTailAccuracy'),
            dict(type='LongTailCalibration', num_bins=15),
        ]

    Args:
        num_bins (int): Number of equal-width confidence bins. Defaults
            to 15.
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the run's.
        counts_file (str, optional): Path of a counts file, instead.
        many_thr (float): Many-shot classes have more training samples than
            this. Defaults to 100.
        few_thr (float): Few-shot classes have fewer training samples than
            this. Defaults to 20.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to None,
            i.e. ``'calib'``.
        collect_dir (str, optional): Directory used to collect results on the
            CPU. Defaults to None.
    """
    default_prefix: Optional[str] = 'calib'

    def __init__(self,
                 num_bins: int = 15,
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 many_thr: float = 100,
                 few_thr: float = 20,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        # Checks the arguments now rather than after a whole test epoch.
        calibration_bin_sums([], [], num_bins)
        shot_groups([], many_thr, few_thr)
        self.num_bins = int(num_bins)
        self.many_thr, self.few_thr = many_thr, few_thr
        self._init_class_counts(class_counts, counts_file)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store label, top-1 confidence, correctness and NLL of every
        sample.

        Args:
            data_batch: A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): The model outputs of the batch.
        """
        if not data_samples:
            return
        labels, scores, predictions = batch_labels_and_scores(
            data_samples, type(self).__name__)
        scores = scores.double()
        confidences = scores.gather(1, predictions[:, None])[:, 0]
        nll = true_class_nll(scores.gather(1, labels[:, None])[:, 0])
        self.results.extend(
            zip(labels.tolist(), confidences.tolist(),
                (predictions == labels).tolist(), nll.tolist()))

    def compute_metrics(self, results: List[tuple]) -> dict:
        """Compute the calibration metrics from all ranks' records.

        Args:
            results (list[tuple]): Records from :meth:`process`.

        Returns:
            dict: The metrics described in the class docstring.
        """
        class_counts = self.class_counts
        if not results:
            return {}
        labels, confidences, correct, nll = (
            np.asarray(column) for column in zip(*results))
        if labels.max() >= len(class_counts):
            raise ValueError(
                f'Labels reach {labels.max()} but the training counts have '
                f'{len(class_counts)} entries: give one count per class.')
        subsets = dict(all=np.ones(len(labels), dtype=bool))
        groups = shot_groups(class_counts, self.many_thr, self.few_thr)
        for name, members in groups.items():
            subsets[name] = np.isin(labels, members)
        metrics = {}
        for name, chosen in subsets.items():
            if not chosen.any():
                continue
            errors = calibration_errors(
                calibration_bin_sums(confidences[chosen], correct[chosen],
                                     self.num_bins))
            suffix = '' if name == 'all' else f'_{name}'
            metrics[f'ece{suffix}'] = errors['ece'] * 100
            metrics[f'mce{suffix}'] = errors['mce'] * 100
            metrics[f'nll{suffix}'] = float(nll[chosen].mean())
        return metrics
