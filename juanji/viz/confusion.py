"""The confusion matrix as a picture: `plot_confusion_matrix` writes a PNG heat map."""

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from juanji.io.files import atomic_write_bytes
from juanji.metrics import per_class_accuracy

ANNOTATE_UP_TO = 20  # classes; past that the cells are too small for numbers


def plot_confusion_matrix(cm, path, class_names=None, normalize=True, title=None):
    """Write a PNG of ``cm`` (K, K), rows true classes, columns predictions; return the Path.

    Cells are coloured by the row-normalised fraction (``normalize``; else by raw count) and,
    for at most 20 classes, show the count. ``class_names`` (K names) label both axes (default
    the indices); each row's label carries the class's accuracy. The write is atomic.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square (K, K) matrix; got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"class_names must have one name per class; got {len(names)} names "
                         f"for {k} classes")
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0) if normalize else cm
    accuracy = per_class_accuracy(cm)

    side = min(3.0 + 0.45 * k, 16.0)
    figure = Figure(figsize=(side + 1.5, side), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04,
                    label="fraction of the true class" if normalize else "count")
    ticks = np.arange(k)
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, [f"{n} ({a:.0%})" if np.isfinite(a) else f"{n} (-)"
                            for n, a in zip(names, accuracy)])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class (accuracy)")
    total = cm.sum()
    correct = np.trace(cm) / total if total else float("nan")
    axes.set_title(title if title is not None else f"confusion matrix: accuracy {correct:.2%}")
    if k <= ANNOTATE_UP_TO:
        for t in range(k):
            for p in range(k):
                dark = shown[t, p] > (0.5 if normalize else shown.max() / 2)
                axes.text(p, t, str(int(cm[t, p])), ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
