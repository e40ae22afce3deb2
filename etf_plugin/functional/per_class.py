"""Per-class statistics of a classifier's predictions: what a per-class
report tabulates."""
from typing import Dict, Sequence

import numpy as np


def per_class_statistics(labels: Sequence[int], predictions: Sequence[int],
                         confidences: Sequence[float],
                         num_classes: int) -> Dict[str, np.ndarray]:
    """Test samples, top-1 accuracy, mean top-1 confidence and the class
    most often predicted instead, for every class.

    Args:
        labels (Sequence[int]): True class of every sample.
        predictions (Sequence[int]): Top-1 predicted class of every sample.
        confidences (Sequence[float]): Top-1 confidence of every sample.
        num_classes (int): Number of classes ``K``.

    Returns:
        dict[str, np.ndarray]: Arrays of length ``K``, indexed by true class:

        - ``test_count``: samples of the class (int64);
        - ``accuracy``: fraction of them predicted correctly (NaN if none);
        - ``mean_confidence``: mean top-1 confidence over them, right or
          wrong (NaN if none);
        - ``most_confused``: the wrong class predicted most often for them
          (the smaller index on a tie), -1 if no sample was misclassified;
        - ``most_confused_rate``: the fraction of the class's samples
          predicted as that class (0 if none).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if not len(labels) == len(predictions) == len(confidences):
        raise ValueError(f'{len(labels)} labels, {len(predictions)} '
                         f'predictions and {len(confidences)} confidences: '
                         f'give one of each per sample.')
    for name, values in (('labels', labels), ('predictions', predictions)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'{name} must lie in [0, {num_classes}), got '
                             f'[{values.min()}, {values.max()}].')
    confusion = np.bincount(
        labels * num_classes + predictions,
        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    test_count = confusion.sum(1)
    present = test_count > 0
    accuracy = np.full(num_classes, np.nan)
    accuracy[present] = np.diag(confusion)[present] / test_count[present]
    mean_confidence = np.full(num_classes, np.nan)
    confidence_sums = np.bincount(
        labels, weights=confidences, minlength=num_classes)
    mean_confidence[present] = confidence_sums[present] / test_count[present]
    errors = confusion.copy()
    np.fill_diagonal(errors, 0)
    most_confused = np.where(errors.max(1) > 0, errors.argmax(1), -1)
    most_confused_rate = np.zeros(num_classes)
    most_confused_rate[present] = errors.max(1)[present] / test_count[present]
    return dict(
        test_count=test_count.astype(np.int64),
        accuracy=accuracy,
        mean_confidence=mean_confidence,
        most_confused=most_confused.astype(np.int64),
        most_confused_rate=most_confused_rate)
