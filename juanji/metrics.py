"""Classification and segmentation metrics from a confusion matrix; pure NumPy.

``confusion_matrix(targets, predictions, num_classes)`` counts (true class, predicted class)
pairs: rows are true classes, columns predictions, for labels of any shape (a batch of
classes (N,) or of masks (N, H, W)). The other functions read a matrix, so a run sums one
matrix over its batches and derives everything from it. A class with no true samples has no
accuracy (NaN); a class absent from both targets and predictions has no IoU (NaN), and
``mean_iou`` averages over the classes that have one.
"""

import numbers

import numpy as np


def confusion_matrix(targets, predictions, num_classes, ignore_index=None):
    """int64 (num_classes, num_classes): entry [t, p] counts the samples of true class t
    predicted as p. ``targets`` and ``predictions`` are integer arrays of one shape; entries
    whose target equals ``ignore_index`` are not counted."""
    if (not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool)
            or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int; got num_classes={num_classes!r}")
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    if targets.shape != predictions.shape:
        raise ValueError(f"targets and predictions must have the same shape; got "
                         f"{targets.shape} and {predictions.shape}")
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise TypeError(f"{name} must be integer class indices; got dtype {values.dtype}")
    targets, predictions = targets.ravel(), predictions.ravel()
    if ignore_index is not None:
        keep = targets != ignore_index
        targets, predictions = targets[keep], predictions[keep]
    for name, values in (("targets", targets), ("predictions", predictions)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(f"{name} must lie in 0..{num_classes - 1} (num_classes="
                             f"{num_classes}); found {values[bad][0]}")
    pairs = targets.astype(np.int64) * num_classes + predictions  # (M,)
    counts = np.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _matrix(cm):
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K); got shape {cm.shape}")
    return cm.astype(np.float64)


def accuracy(cm):
    """Fraction of all samples on the diagonal: sum(diag) / sum(cm) (NaN when empty)."""
    cm = _matrix(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def pixel_accuracy(cm):
    """Segmentation's pixel accuracy: correctly classified pixels / all pixels counted."""
    return accuracy(cm)


def per_class_accuracy(cm):
    """(K,) float64: recall of each class, diag / row sum; NaN for a class with no samples."""
    cm = _matrix(cm)
    rows = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / rows, np.nan)


def per_class_iou(cm):
    """(K,) float64: intersection over union per class, diag / (row + column - diag); NaN for
    a class that is neither in the targets nor in the predictions."""
    cm = _matrix(cm)
    diag = np.diag(cm)
    union = cm.sum(axis=1) + cm.sum(axis=0) - diag
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, diag / union, np.nan)


def mean_iou(cm):
    """Mean of per_class_iou over the classes that have one (NaN when none has)."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
