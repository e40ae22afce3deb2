import numpy as np
import pytest

from etf_plugin.functional import per_class_statistics


def test_hand_made_table():
    # class 0: 3 samples, 2 right, one taken for 2; class 1: 2 samples,
    # both taken for 0; class 2: 1 right; class 3: absent.
    stats = per_class_statistics(
        labels=[0, 0, 0, 1, 1, 2],
        predictions=[0, 0, 2, 0, 0, 2],
        confidences=[0.9, 0.8, 0.4, 0.6, 0.7, 1.0],
        num_classes=4)
    assert stats['test_count'].tolist() == [3, 2, 1, 0]
    np.testing.assert_allclose(stats['accuracy'][:3], [2 / 3, 0, 1])
    np.testing.assert_allclose(stats['mean_confidence'][:3], [0.7, 0.65, 1])
    assert np.isnan(stats['accuracy'][3])
    assert stats['most_confused'].tolist() == [2, 0, -1, -1]
    np.testing.assert_allclose(stats['most_confused_rate'], [1 / 3, 1, 0, 0])


def test_checks():
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        per_class_statistics([0, 2], [0, 0], [0.5, 0.5], 2)
    with pytest.raises(ValueError, match='one of each'):
        per_class_statistics([0, 1], [0], [0.5, 0.5], 2)
