"""Calibration of top-1 confidences: expected and maximum calibration error
from per-bin sums, and the negative log-likelihood of the true class.

The errors are written over *sums* per confidence bin (samples, confidences,
correct predictions), so that the sums of several shards or of several class
groups simply add up before the errors are taken.

Binning (Guo et al., ICML 2017): ``num_bins`` equal-width bins over
``[0, 1]``, bin ``b`` holding the confidences in ``(b / B, (b + 1) / B]``
(a confidence of exactly 0 falls in bin 0). With ``n_b`` samples in bin
``b``, ``N`` in all, ``acc_b`` the fraction of them predicted correctly and
``conf_b`` their mean confidence::

    ECE = sum_b (n_b / N) * |acc_b - conf_b|
    MCE = max_{b : n_b > 0} |acc_b - conf_b|
"""
from typing import Dict, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[Sequence[float], np.ndarray, torch.Tensor]


def _as_numpy(values: ArrayLike, dtype=np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1)


def calibration_bin_sums(confidences: ArrayLike,
                         correct: ArrayLike,
                         num_bins: int = 15) -> np.ndarray:
    """Per-bin sums of the samples, their confidences and their correct
    predictions.

    Args:
        confidences (Sequence[float] | np.ndarray | torch.Tensor): Top-1
            confidence of every sample, in ``[0, 1]``.
        correct (Sequence[bool] | np.ndarray | torch.Tensor): Whether each
            sample's top-1 prediction is its label.
        num_bins (int): Number of equal-width bins. Defaults to 15.

    Returns:
        np.ndarray: ``(3, num_bins)`` float64: row 0 the number of samples
        per bin, row 1 the sum of their confidences, row 2 the number
        predicted correctly. Sums of several calls add up.
    """
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f'num_bins must be a positive integer, got '
                         f'{num_bins}.')
    confidences = _as_numpy(confidences)
    correct = _as_numpy(correct)
    if confidences.shape != correct.shape:
        raise ValueError(f'{len(confidences)} confidences but '
                         f'{len(correct)} correctness flags: give one of '
                         f'each per sample.')
    if len(confidences) and not (
            (confidences >= 0) & (confidences <= 1)).all():
        raise ValueError(
            'Confidences must lie in [0, 1]; calibrate probabilities (e.g. '
            'the softmax of the logits), not raw logits.')
    num_bins = int(num_bins)
    upper_edges = np.linspace(0, 1, num_bins + 1)[1:-1]
    # side='left': bin b is (edge_b, edge_{b+1}], as in Guo et al.'s code.
    bins = np.searchsorted(upper_edges, confidences, side='left')
    return np.stack([
        np.bincount(bins, minlength=num_bins).astype(np.float64),
        np.bincount(bins, weights=confidences, minlength=num_bins),
        np.bincount(bins, weights=correct, minlength=num_bins),
    ])


def calibration_errors(bin_sums: np.ndarray) -> Dict[str, float]:
    """Expected and maximum calibration error from per-bin sums.

    Args:
        bin_sums (np.ndarray): ``(3, B)`` sums from
            :func:`calibration_bin_sums` (possibly added over shards).

    Returns:
        dict[str, float]: ``ece`` and ``mce`` as fractions in ``[0, 1]``;
        NaN for both when no sample was binned.
    """
    bin_sums = np.asarray(bin_sums, dtype=np.float64)
    if bin_sums.ndim != 2 or bin_sums.shape[0] != 3:
        raise ValueError(f'bin_sums must have shape (3, num_bins) (counts, '
                         f'confidence sums, correct sums), got '
                         f'{bin_sums.shape}.')
    counts, confidence_sums, correct_sums = bin_sums
    total = counts.sum()
    if total == 0:
        return dict(ece=float('nan'), mce=float('nan'))
    filled = counts > 0
    gaps = np.abs(correct_sums[filled] - confidence_sums[filled])
    return dict(
        ece=float(gaps.sum() / total),
        mce=float((gaps / counts[filled]).max()))


def true_class_nll(true_class_probs: ArrayLike) -> np.ndarray:
    """Negative log-likelihood ``-log p_y`` of every sample's true class.

    A probability of 0 (a float32 softmax that underflowed) is clamped to
    the smallest positive float64, so one sample gives a large but finite
    loss (about 708) instead of infinity.

    Args:
        true_class_probs (Sequence[float] | np.ndarray | torch.Tensor): The
            predicted probability of each sample's label.

    Returns:
        np.ndarray: float64 losses in nats, one per sample.
    """
    probs = _as_numpy(true_class_probs)
    return -np.log(np.maximum(probs, np.finfo(np.float64).tiny))
