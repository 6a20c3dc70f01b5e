"""The confusion-matrix PNG: written atomically, sized for its classes, names on the axes."""

import numpy as np
import pytest
from PIL import Image

from juanji.viz.confusion import plot_confusion_matrix


def test_writes_a_png_with_class_names(tmp_path, monkeypatch):
    import matplotlib.axes

    labels = {}
    original = matplotlib.axes.Axes.set_xticks

    def spy(self, ticks, names=None, **kw):
        labels["x"] = list(names)
        return original(self, ticks, names, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticks", spy)
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    path = plot_confusion_matrix(cm, tmp_path / "cm.png", class_names=["cat", "dog", "owl"])
    assert path == tmp_path / "cm.png" and [p.name for p in tmp_path.iterdir()] == ["cm.png"]
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
    assert labels["x"] == ["cat", "dog", "owl"]


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"cm must be a square \(K, K\) matrix; got shape"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="one name per class; got 1 names for 2 classes"):
        plot_confusion_matrix(np.eye(2), tmp_path / "x.png", class_names=["a"])
    assert not (tmp_path / "x.png").exists()
