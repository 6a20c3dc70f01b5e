"""DataLoader: a dataset cut into batches of (images float32 NCHW, labels int64)."""

import numpy as np

from juanji.data.transforms import ToFloat

_TO_FLOAT = ToFloat()


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    Each iteration (epoch) yields ``(images, labels)`` NumPy batches: images float32
    (B, C, H, W), labels int64 (B,) (or (B, H, W) for a segmentation dataset, whose
    ``.labels`` are its masks), where B is ``batch_size`` except possibly for a last,
    smaller batch (dropped when ``drop_last``). A batch that is not already float32 NCHW after
    the dataset's transform goes through ``ToFloat().batch`` (uint8 -> [0, 1], channel axis
    added or moved by ToFloat's layout rule).

    With ``shuffle``, every epoch visits the samples in a new permutation drawn from one
    generator seeded once from ``seed`` (an int, None or a ``numpy.random.Generator``): two
    loaders built with the same int seed yield the same sequence of epochs.

    ``state_dict()`` / ``load_state_dict()`` save and restore the position: the generator's
    state at the start of the current epoch and the batches already handed out, so a loader
    restored in the middle of an epoch yields exactly the batches the saved one had not.

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
        self._epoch_start = None  # the generator's state when the current epoch began
        self._position = 0  # batches handed out in the current epoch
        self._resume_at = 0  # batch to start the next epoch from (set by load_state_dict)

    def __len__(self):
        """Number of batches per epoch."""
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)  # ceil(n / batch_size)

    def __iter__(self):
        n = len(self.dataset)
        first, self._resume_at = self._resume_at, 0
        self._epoch_start = self.rng.bit_generator.state
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)  # (n,)
        fetch = self._fetch_arrays if _has_array_path(self.dataset) else self._fetch_samples
        for batch in range(first, len(self)):
            start = batch * self.batch_size
            images, labels = fetch(order[start:start + self.batch_size])
            if images.dtype != np.float32 or images.ndim != 4:
                images = _TO_FLOAT.batch(images)  # (B, C, H, W) float32
            self._position = batch + 1
            yield images, labels
        self._position = 0

    def state_dict(self):
        """{"rng": generator state, "batch": batches done} to continue from this point.

        Inside an epoch, "rng" is the state the epoch started from (its permutation is drawn
        again on restore); between epochs (or after the last batch) it is the current state
        and "batch" is 0.
        """
        if 0 < self._position < len(self):
            return {"rng": self._epoch_start, "batch": self._position}
        return {"rng": self.rng.bit_generator.state, "batch": 0}

    def load_state_dict(self, state):
        """Continue where `state_dict()` was taken: the next iteration resumes that epoch."""
        batch = state.get("batch", 0)
        if not isinstance(batch, int) or not 0 <= batch < max(len(self), 1):
            raise ValueError(f"batch must be an int in [0, {len(self)}); got batch={batch!r}")
        self.rng.bit_generator.state = state["rng"]
        self._resume_at, self._position = batch, 0

    def _fetch_arrays(self, index):
        """Batch ``index`` (B,) sliced from the dataset's arrays, transformed in one call.

        Labels with more than one axis (segmentation masks (B, H, W)) go through the transform
        together with the images, ``transform.batch(images, labels)``, so that geometric
        augmentations move a mask with its image.
        """
        images = self.dataset.images[index]  # (B, ...)
        labels = self.dataset.labels[index]  # (B,) or (B, H, W)
        transform = getattr(self.dataset, "transform", None)
        if transform is not None and labels.ndim > 1:
            images, labels = transform.batch(images, labels)
        elif transform is not None:
            images = transform.batch(images)
        return images, labels.astype(np.int64, copy=False)

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
