"""``LongTailAccuracy``: top-k, per-class, macro and many/medium/few-shot
accuracy."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from etf_plugin.utils.class_counts import ClassCountsConsumer
from etf_plugin.functional.long_tail import class_sizes, shot_groups


@METRICS.register_module()
class LongTailAccuracy(ClassCountsConsumer, BaseMetric):
    """Accuracy on a (usually balanced) test set of a long-tailed task.

    Reports, in percent, under the prefix ``lt`` by default:

    - ``top{k}``: overall top-k accuracy, for every ``k`` in ``topk``.
    - ``macro``: mean of the per-class top-1 accuracies (balanced accuracy).
    - ``many`` / ``medium`` / ``few``: mean per-class top-1 accuracy over the
      classes of each shot group, split by *training* samples per class with
      :func:`etf_plugin.functional.long_tail.shot_groups` (OLTR convention:
      many ``> many_thr``, few ``< few_thr``, medium in between).
    - ``per_class`` (only with ``per_class=True``): list of per-class top-1
      accuracies, ``None`` for classes absent from the evaluation set. Off by
      default because it prints ``K`` numbers in every log line.

    Classes absent from the evaluation set are left out of ``macro`` and of
    the group means; a group with no evaluated class is not reported (no
    NaN, no error).

    The training counts are those of the training set the runner uses, or,
    when a checkpoint is tested, those it was trained with: both handed over
    by ``ClassCountsHook`` (in the runtime of every etf_plugin config). The
    evaluation dataset's ``dataset_meta`` cannot give them: it describes the
    test set. ``class_counts=[...]`` or ``counts_file=PATH`` override them,
    and are what a run without the hook needs (e.g. MMPretrain's
    ``tools/analysis_tools/eval_metric.py`` on dumped predictions).

    Distributed evaluation: ``process`` stores one small record per sample
    (label and top-``max(topk)`` predictions), so MMEngine's
    ``collect_results`` removes the sampler's padding exactly.

    Example config::

        val_evaluator = dict(type='LongTailAccuracy', topk=(1, 5))

    Args:
        topk (int | Sequence[int]): Top-k accuracies to report.
            Defaults to (1, ).
        class_counts (Sequence[int], optional): Training samples per class,
            instead of the run's.
        counts_file (str, optional): Path of a counts file, instead.
        many_thr (float): Many-shot classes have more training samples than
            this. Defaults to 100.
        few_thr (float): Few-shot classes have fewer training samples than
            this. Defaults to 20.
        per_class (bool): Also report per-class accuracies. Defaults to False.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to None,
            i.e. ``'lt'``.
        collect_dir (str, optional): Directory used to collect results on the
            CPU. Defaults to None.
    """
    default_prefix: Optional[str] = 'lt'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, ),
                 class_counts: Optional[Sequence[int]] = None,
                 counts_file: Optional[str] = None,
                 many_thr: float = 100,
                 few_thr: float = 20,
                 per_class: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}.')
        # Validates the thresholds now rather than after a whole test epoch.
        shot_groups([], many_thr, few_thr)
        self.many_thr, self.few_thr = many_thr, few_thr
        self.per_class = per_class
        self._init_class_counts(class_counts, counts_file)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the label and the top-``max(topk)`` predictions of every
        sample.

        Args:
            data_batch: A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): The model outputs of the batch.
        """
        maxk = max(self.topk)
        for data_sample in data_samples:
            if 'pred_score' in data_sample:
                score = data_sample['pred_score'].detach().cpu()
                pred = score.topk(min(maxk, score.numel())).indices
            elif maxk == 1:
                pred = data_sample['pred_label'].detach().cpu().reshape(1)
            else:
                raise ValueError(
                    f'top-{maxk} accuracy needs pred_score, but the model '
                    f'only outputs pred_label; use topk=(1, ).')
            self.results.append(
                dict(
                    gt_label=int(data_sample['gt_label'].reshape(-1)[0]),
                    pred_topk=pred.to(torch.int64)))

    def compute_metrics(self, results: List[dict]) -> dict:
        """Compute the accuracies from the gathered per-sample records.

        Args:
            results (list[dict]): Records from :meth:`process` of all ranks.

        Returns:
            dict: The metrics described in the class docstring.
        """
        class_counts = self.class_counts
        num_classes = len(class_counts)
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f'The evaluation dataset has {len(classes)} classes but the '
                f'training counts have {num_classes} entries.')
        metrics = {}
        if not results:
            return metrics
        gt = torch.tensor([r['gt_label'] for r in results])
        maxk = max(self.topk)
        preds = torch.full((len(results), maxk), -1, dtype=torch.int64)
        for i, r in enumerate(results):
            preds[i, :len(r['pred_topk'])] = r['pred_topk']
        hits = preds == gt[:, None]
        for k in self.topk:
            hit_rate = hits[:, :k].any(1).double().mean().item()
            metrics[f'top{k}'] = hit_rate * 100

        # class_sizes checks that every label has a training count.
        test_sizes = class_sizes(gt.numpy(), num_classes)
        correct = np.bincount(
            gt.numpy(), weights=hits[:, 0].numpy(), minlength=num_classes)
        present = test_sizes > 0
        accuracy = np.zeros(num_classes)
        accuracy[present] = correct[present] / test_sizes[present] * 100
        metrics['macro'] = float(accuracy[present].mean())
        groups = shot_groups(class_counts, self.many_thr, self.few_thr)
        for name, members in groups.items():
            members = members[present[members]]
            if len(members):
                metrics[name] = float(accuracy[members].mean())
        if self.per_class:
            metrics['per_class'] = [
                float(a) if p else None for a, p in zip(accuracy, present)
            ]
        return metrics
