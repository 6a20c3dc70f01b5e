import numpy as np
import pytest

from juanji.data.datasets import ArrayDataset, Dataset
from juanji.data.loader import DataLoader
from juanji.data.transforms import Compose, Normalize, ToFloat


def indexed_dataset(n, transform=None):
    """n images of shape (2, 3); image i is filled with i and labelled i."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 2, 3))
    return ArrayDataset(images, np.arange(n), transform=transform)


class SampleOnly(Dataset):
    """The same samples as an ArrayDataset, but reachable only through ``ds[i]``."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]


def labels_of(loader):
    return [labels.tolist() for _, labels in loader]


@pytest.mark.parametrize("n, batch_size, drop_last, expected", [
    (10, 3, False, 4), (10, 3, True, 3), (9, 3, False, 3), (9, 3, True, 3),
    (2, 5, False, 1), (2, 5, True, 0), (0, 4, False, 0), (7, 1, False, 7),
])
def test_len_counts_batches(n, batch_size, drop_last, expected):
    loader = DataLoader(indexed_dataset(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == expected
    assert len(list(loader)) == expected


def test_in_order_batches_and_drop_last():
    loader = DataLoader(indexed_dataset(10), batch_size=4)
    assert labels_of(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = DataLoader(indexed_dataset(10), batch_size=4, drop_last=True)
    assert labels_of(dropped) == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_batches_are_float32_nchw_and_int64():
    images, labels = next(iter(DataLoader(indexed_dataset(5), batch_size=2)))
    assert images.dtype == np.float32 and images.shape == (2, 1, 2, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images[1], np.full((1, 2, 3), np.float32(1 / 255)))


def test_shuffle_visits_every_index_once_per_epoch():
    loader = DataLoader(indexed_dataset(23), batch_size=5, shuffle=True, seed=0)
    epochs = [np.concatenate([labels for _, labels in loader]) for _ in range(3)]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(23))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.arange(23))


def test_images_follow_their_labels_when_shuffled():
    loader = DataLoader(indexed_dataset(12), batch_size=5, shuffle=True, seed=1)
    for images, labels in loader:
        np.testing.assert_array_equal(images[:, 0, 0, 0], np.float32(labels / 255))


def test_shuffle_with_drop_last_uses_distinct_indices():
    loader = DataLoader(indexed_dataset(10), batch_size=3, shuffle=True, drop_last=True, seed=2)
    seen = np.concatenate([labels for _, labels in loader])
    assert len(seen) == 9 and len(set(seen.tolist())) == 9


def test_same_seed_same_sequence_of_epochs():
    def run(seed):
        loader = DataLoader(indexed_dataset(20), batch_size=6, shuffle=True, seed=seed)
        return [labels_of(loader) for _ in range(3)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_fast_path_matches_per_sample_path():
    transform = Compose([ToFloat(), Normalize(0.5, 0.25)])
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, size=(11, 4, 4), dtype=np.uint8),
                        rng.integers(0, 10, size=11), transform=transform)
    fast = list(DataLoader(data, batch_size=4, shuffle=True, seed=3))
    slow = list(DataLoader(SampleOnly(data), batch_size=4, shuffle=True, seed=3))
    assert len(fast) == len(slow) == 3
    for (fast_x, fast_y), (slow_x, slow_y) in zip(fast, slow):
        assert fast_x.dtype == slow_x.dtype == np.float32
        np.testing.assert_array_equal(fast_x, slow_x)
        np.testing.assert_array_equal(fast_y, slow_y)


def test_fast_path_transforms_whole_batches():
    class BatchOnly:
        def __call__(self, x):
            raise AssertionError("per-sample path used")

        def batch(self, xs):
            return ToFloat().batch(xs) * 2

    images, _ = next(iter(DataLoader(indexed_dataset(4, BatchOnly()), batch_size=4)))
    np.testing.assert_array_equal(images[:, 0, 0, 0], np.float32([0, 2, 4, 6]) / 255)


def test_plain_callable_transform_goes_sample_by_sample():
    loader = DataLoader(indexed_dataset(3, lambda x: x.astype(np.float32)[None]), batch_size=3)
    images, _ = next(iter(loader))
    assert images.shape == (3, 1, 2, 3)
    np.testing.assert_array_equal(images[:, 0, 0, 0], [0.0, 1.0, 2.0])  # cast, not scaled


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "4"])
def test_batch_size_is_validated(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer; got "
                                         f"batch_size={batch_size!r}"):
        DataLoader(indexed_dataset(3), batch_size=batch_size)


def test_dataset_is_validated():
    with pytest.raises(TypeError, match="dataset must define __len__ and __getitem__; got int"):
        DataLoader(5)
