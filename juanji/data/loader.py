"""DataLoader: a dataset cut into batches of (images float32 NCHW, labels int64)."""

import numpy as np

from juanji.data.transforms import ToFloat

_TO_FLOAT = ToFloat()


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    Each iteration (epoch) yields ``(images, labels)`` NumPy batches: images float32
    (B, C, H, W), labels int64 (B,), where B is ``batch_size`` except possibly for a last,
    smaller batch (dropped when ``drop_last``). A batch that is not already float32 NCHW after
    the dataset's transform goes through ``ToFloat().batch`` (uint8 -> [0, 1], channel axis
    added or moved by ToFloat's layout rule).

    With ``shuffle``, every epoch visits the samples in a new permutation drawn from one
    generator seeded once from ``seed`` (an int, None or a ``numpy.random.Generator``): two
    loaders built with the same int seed yield the same sequence of epochs.

    Fast path: when the dataset exposes ``.images`` and ``.labels`` arrays and its
    ``.transform`` is None or has a ``batch`` method (as ``ArrayDataset`` does), each batch is
    sliced from the arrays and transformed in one call; otherwise samples are fetched one by
    one with ``dataset[i]`` and stacked.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None):
        if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer; got batch_size="
                             f"{batch_size!r}")
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"dataset must define __len__ and __getitem__; got "
                            f"{type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        """Number of batches per epoch."""
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)  # ceil(n / batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)  # (n,)
        fetch = self._fetch_arrays if _has_array_path(self.dataset) else self._fetch_samples
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            images, labels = fetch(order[start:start + self.batch_size])
            if images.dtype != np.float32 or images.ndim != 4:
                images = _TO_FLOAT.batch(images)  # (B, C, H, W) float32
            yield images, labels

    def _fetch_arrays(self, index):
        """Batch ``index`` (B,) sliced from the dataset's arrays, transformed in one call."""
        images = self.dataset.images[index]  # (B, ...)
        transform = getattr(self.dataset, "transform", None)
        if transform is not None:
            images = transform.batch(images)
        return images, self.dataset.labels[index].astype(np.int64, copy=False)

    def _fetch_samples(self, index):
        """Batch ``index`` (B,) built from ``dataset[i]`` pairs, stacked."""
        samples = [self.dataset[int(i)] for i in index]
        images = np.stack([np.asarray(image) for image, _ in samples])  # (B, ...)
        labels = np.array([label for _, label in samples], dtype=np.int64)  # (B,)
        return images, labels


def _has_array_path(dataset):
    """True when batches can be sliced from ``dataset.images``/``.labels`` directly."""
    images = getattr(dataset, "images", None)
    labels = getattr(dataset, "labels", None)
    transform = getattr(dataset, "transform", None)
    return (isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)
            and len(images) == len(labels) == len(dataset)
            and (transform is None or callable(getattr(transform, "batch", None))))
