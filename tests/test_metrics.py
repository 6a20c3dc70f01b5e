"""Confusion matrix, per-class accuracy, IoU and pixel accuracy, each checked by hand."""

import numpy as np
import pytest

from juanji.metrics import (
    accuracy,
    confusion_matrix,
    mean_iou,
    per_class_accuracy,
    per_class_iou,
    pixel_accuracy,
)


def test_confusion_matrix_rows_are_true_classes():
    targets = [0, 0, 1, 2, 2, 2]
    predictions = [0, 1, 1, 2, 0, 2]
    cm = confusion_matrix(targets, predictions, 4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0],
                                       [0, 1, 0, 0],
                                       [1, 0, 2, 0],
                                       [0, 0, 0, 0]])
    assert accuracy(cm) == pytest.approx(4 / 6)
    # class 3 has no samples: no accuracy
    np.testing.assert_allclose(per_class_accuracy(cm), [1 / 2, 1, 2 / 3, np.nan])


def test_segmentation_metrics_on_masks_by_hand():
    target = np.array([[[0, 0, 1],
                        [0, 1, 1]]])
    predicted = np.array([[[0, 1, 1],
                           [0, 0, 1]]])
    cm = confusion_matrix(target, predicted, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [1, 2, 0], [0, 0, 0]])
    assert pixel_accuracy(cm) == pytest.approx(4 / 6)
    # class 0: intersection 2, union 3 + 3 - 2 = 4; class 1 the same; class 2 absent
    np.testing.assert_allclose(per_class_iou(cm), [0.5, 0.5, np.nan])
    assert mean_iou(cm) == pytest.approx(0.5)
    # a class predicted but never true has IoU 0 and counts in the mean
    cm2 = confusion_matrix([0, 0], [0, 2], 3)
    np.testing.assert_allclose(per_class_iou(cm2), [0.5, np.nan, 0.0])
    assert mean_iou(cm2) == pytest.approx(0.25)


def test_ignore_index_and_accumulation_over_batches():
    t = np.array([0, 255, 1, 1])
    p = np.array([0, 1, 0, 1])
    cm = confusion_matrix(t, p, 2, ignore_index=255)
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])
    total = confusion_matrix([0, 1], [0, 0], 2) + confusion_matrix([1], [1], 2)
    np.testing.assert_array_equal(total, cm)


def test_empty_matrix_and_bad_input():
    cm = confusion_matrix(np.zeros(0, np.int64), np.zeros(0, np.int64), 2)
    assert np.isnan(accuracy(cm)) and np.isnan(mean_iou(cm))
    with pytest.raises(ValueError, match=r"predictions must lie in 0..1 \(num_classes=2\); "
                                         r"found 5"):
        confusion_matrix([0, 1], [0, 5], 2)
    with pytest.raises(ValueError, match="same shape; got"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(TypeError, match="targets must be integer class indices; got dtype "
                                        "float64"):
        confusion_matrix([0.0], [0], 2)
    with pytest.raises(ValueError, match="num_classes must be a positive int; got "
                                         "num_classes=0"):
        confusion_matrix([0], [0], 0)
    with pytest.raises(ValueError, match=r"must be square \(K, K\); got shape \(2, 3\)"):
        per_class_iou(np.zeros((2, 3)))
