"""The labels and class scores of a batch of model outputs, as tensors: what
the long-tail metrics read from the ``DataSample`` outputs of a head's
``predict``."""
from typing import Optional, Sequence, Tuple

import torch


def batch_labels_and_scores(
        data_samples: Sequence[dict],
        owner: str,
        need_scores: bool = True
) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """Stack the true labels, the class scores and the top-1 predictions of
    a batch.

    The top-1 prediction is ``scores.topk(1)``, as ``LongTailAccuracy`` and
    MMPretrain's ``Accuracy`` take it, so every metric agrees on ties.

    Args:
        data_samples (Sequence[dict]): The model outputs of the batch
            (``gt_label`` and ``pred_score``, or ``pred_label`` only).
        owner (str): Metric name for error messages.
        need_scores (bool): Raise an error naming the fix when the outputs
            hold no ``pred_score``. Defaults to True.

    Returns:
        tuple: ``(labels, scores, predictions)``: int64 ``(B,)``, float
        ``(B, K)`` on the CPU (None without ``pred_score``), int64 ``(B,)``.
    """
    labels = torch.tensor(
        [int(sample['gt_label'].reshape(-1)[0]) for sample in data_samples],
        dtype=torch.int64)
    if data_samples and all('pred_score' in s for s in data_samples):
        scores = torch.stack(
            [s['pred_score'].detach().cpu().reshape(-1) for s in data_samples])
        return labels, scores, scores.topk(1, dim=1).indices[:, 0]
    if need_scores:
        raise ValueError(
            f'{owner} needs the class scores (pred_score) of every sample, '
            f'but the model outputs only pred_label. Use a head whose predict '
            f'returns scores (every MMPretrain and etf_plugin classification '
            f'head does), or dump predictions with --out-item pred.')
    predictions = torch.tensor(
        [int(s['pred_label'].reshape(-1)[0]) for s in data_samples],
        dtype=torch.int64)
    return labels, None, predictions
