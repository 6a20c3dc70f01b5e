import hashlib
from pathlib import Path

import numpy as np
import pytest

from juanji.data import datasets
from juanji.data.datasets import (
    CIFAR10,
    MNIST,
    ArrayDataset,
    DatasetNotFoundError,
    FashionMNIST,
    read_cifar10_batch,
    search_locations,
)
from juanji.data.idx import read_idx, write_idx
from juanji.data.transforms import ToFloat


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Isolate the search: HOME, JUANJI_DATA and the system folder all point into tmp_path."""
    home, env, system = tmp_path / "home", tmp_path / "env", tmp_path / "system"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JUANJI_DATA", str(env))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", system)
    return {"root": tmp_path / "root", "env": env, "home": home, "system": system}


def make_mnist_files(folder, n_train=6, n_test=4, fill=0, gz=True):
    """Write the four MNIST-format files; image i is filled with (fill + i) % 256."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = ((fill + np.arange(n)) % 256).astype(np.uint8)[:, None, None]
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}",
                  np.broadcast_to(images, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}",
                  (np.arange(n) % 10).astype(np.uint8))


def test_search_order(places):
    root = places["root"]
    assert search_locations("fashion-mnist", root=root) == [
        root,
        root / "fashion-mnist",
        places["env"] / "fashion-mnist",
        places["env"],
        places["home"] / ".cache" / "juanji" / "fashion-mnist",
        places["system"] / "fashion-mnist",
    ]


def test_search_order_without_root_or_env(places, monkeypatch):
    monkeypatch.delenv("JUANJI_DATA")
    assert search_locations("mnist") == [
        places["home"] / ".cache" / "juanji" / "mnist",
        places["system"] / "mnist",
    ]


def test_first_location_holding_the_files_wins(places):
    folders = [
        places["root"],
        places["env"] / "fashion-mnist",
        places["env"],
        places["home"] / ".cache" / "juanji" / "fashion-mnist",
        places["system"] / "fashion-mnist",
    ]
    for i, folder in enumerate(folders):
        make_mnist_files(folder, fill=10 * i)
    for i, folder in enumerate(folders):
        ds = FashionMNIST(root=places["root"], download=False)
        assert ds.root == folder
        assert ds.images[0, 0, 0] == 10 * i
        for path in folder.glob("*-ubyte.gz"):
            path.unlink()


def test_loads_train_and_test_splits_plain_or_gzip(places):
    make_mnist_files(places["root"], n_train=7, n_test=3, gz=False)
    train = MNIST(root=places["root"], download=False)
    test = MNIST(root=places["root"], train=False, download=False)
    assert train.images.shape == (7, 28, 28) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.labels, [0, 1, 2, 3, 4, 5, 6])
    assert len(test) == 3 and test.train is False
    assert train.classes[3] == "3 - three" and len(train.classes) == 10


def test_getitem_applies_transform(places):
    make_mnist_files(places["system"] / "fashion-mnist", n_train=3)
    ds = FashionMNIST(transform=ToFloat(), download=False)
    image, label = ds[2]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    assert image[0, 5, 5] == np.float32(2 / 255)
    assert label == 2 and isinstance(label, int)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    with pytest.raises(IndexError, match="index 3 is out of range for a dataset of 3"):
        ds[3]


def test_missing_data_error_lists_places_and_remedy(places):
    with pytest.raises(DatasetNotFoundError) as info:
        FashionMNIST(root=places["root"], download=False)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.searched == search_locations("fashion-mnist", root=places["root"])
    message = str(err)
    for place in err.searched:
        assert str(place) in message
    assert "train-images-idx3-ubyte[.gz]" in message
    assert "download=False" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "JUANJI_DATA" in message


def test_half_present_split_is_not_found(places):
    make_mnist_files(places["root"])
    (places["root"] / "t10k-labels-idx1-ubyte.gz").unlink()
    MNIST(root=places["root"], download=False)  # the train split is complete
    with pytest.raises(DatasetNotFoundError, match=r"MNIST \(test split\) not found"):
        MNIST(root=places["root"], train=False, download=False)


def serve_from(monkeypatch, folder, cls=FashionMNIST, md5=None):
    """Point cls's download at file:// URLs in ``folder`` with the files' real MD5s."""
    if md5 is None:
        md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(cls, "base_url", folder.as_uri() + "/")
    monkeypatch.setattr(cls, "md5", md5)


def test_download_into_cache_verifies_md5(places, tmp_path, monkeypatch):
    make_mnist_files(tmp_path / "server", n_train=5)
    serve_from(monkeypatch, tmp_path / "server")
    ds = FashionMNIST()
    cache = places["home"] / ".cache" / "juanji" / "fashion-mnist"
    assert ds.root == cache and len(ds) == 5
    assert sorted(p.name for p in cache.iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    # The second load finds the cached copy and does not download again.
    serve_from(monkeypatch, tmp_path / "nowhere", md5={})
    assert FashionMNIST().root == cache


def test_download_checksum_mismatch_writes_nothing(places, tmp_path, monkeypatch):
    make_mnist_files(tmp_path / "server")
    serve_from(monkeypatch, tmp_path / "server")
    monkeypatch.setitem(FashionMNIST.md5, "train-images-idx3-ubyte.gz", "0" * 32)
    with pytest.raises(DatasetNotFoundError, match=r"checksum mismatch: expected md5 0{32}"):
        FashionMNIST()
    assert not (places["home"] / ".cache" / "juanji" / "fashion-mnist").exists()


def test_download_failure_is_one_clear_error(places, tmp_path, monkeypatch):
    serve_from(monkeypatch, tmp_path / "empty", cls=MNIST, md5={
        "train-images-idx3-ubyte.gz": "0" * 32, "train-labels-idx1-ubyte.gz": "0" * 32})
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST()
    message = str(info.value)
    assert "download from file://" in message and "failed" in message
    assert "set JUANJI_DATA" in message
    assert "\n" not in message


def test_image_and_label_counts_must_agree(places):
    make_mnist_files(places["root"])
    write_idx(places["root"] / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"holds 6 images but .* holds 5 labels"):
        MNIST(root=places["root"], download=False)


def test_rejects_bad_contents(places):
    make_mnist_files(places["root"])
    labels_path = places["root"] / "train-labels-idx1-ubyte.gz"
    write_idx(labels_path, np.full(6, 10, np.uint8))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9; found 10"):
        MNIST(root=places["root"], download=False)
    write_idx(labels_path, np.zeros(6, np.uint8))
    write_idx(places["root"] / "train-images-idx3-ubyte.gz", np.zeros((6, 27, 28), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\); got uint8 of shape \(6, 27, 28\)"):
        MNIST(root=places["root"], download=False)


def test_array_dataset_validates():
    with pytest.raises(ValueError, match="got 3 images and 2 labels"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"labels must be 1-D \(N,\); got shape \(3, 1\)"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros((3, 1), np.int64))
    with pytest.raises(TypeError, match="labels must be integers; got dtype float64"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros(3))
    with pytest.raises(TypeError, match="transform must be callable"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros(3, np.int64), transform=3)
    ds = ArrayDataset(np.arange(12).reshape(3, 2, 2), np.array([2, 0, 1], np.uint8))
    assert ds.labels.dtype == np.int64 and len(ds) == 3
    image, label = ds[-1]
    np.testing.assert_array_equal(image, [[8, 9], [10, 11]])
    assert label == 1


def write_cifar_batch(path, labels, first_pixel):
    """One CIFAR-10 batch: record i has label labels[i], pixel bytes (first_pixel + i + k) % 256."""
    records = []
    for i, label in enumerate(labels):
        pixels = (first_pixel + i + np.arange(3072)) % 256
        records.append(np.concatenate([[label], pixels]).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.concatenate(records).tobytes())


def make_cifar_files(folder):
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}.bin", [i, i + 1], first_pixel=10 * i)
    write_cifar_batch(folder / "test_batch.bin", [9, 0, 3], first_pixel=200)


def test_cifar10_reads_binary_batches_channel_first(places):
    make_cifar_files(places["env"] / "cifar-10" / "cifar-10-batches-bin")
    train = CIFAR10()
    assert train.root == places["env"] / "cifar-10" / "cifar-10-batches-bin"
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, [1, 2, 2, 3, 3, 4, 4, 5, 5, 6])
    # Record 1 of data_batch_1 starts at pixel byte 11: R plane first, row-major 32x32.
    assert train.images[1, 0, 0, 0] == 11
    assert train.images[1, 0, 0, 1] == 12
    assert train.images[1, 0, 1, 0] == 11 + 32
    assert train.images[1, 1, 0, 0] == (11 + 1024) % 256
    assert train.images[1, 2, 31, 31] == (11 + 3071) % 256
    test = CIFAR10(train=False)
    np.testing.assert_array_equal(test.labels, [9, 0, 3])
    assert test.classes[0] == "airplane" and test.classes[9] == "truck"


def test_cifar10_rejects_partial_records(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(b"\x00" * (2 * 3073 + 5))
    with pytest.raises(ValueError, match=r"3073-byte records; got 6151 bytes \(5 past"):
        read_cifar10_batch(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="got 0 bytes"):
        read_cifar10_batch(path)
    path.write_bytes(b"\x0a" + b"\x00" * 3072)
    with pytest.raises(ValueError, match=r"labels must lie in 0..9; found 10"):
        read_cifar10_batch(path)


def test_cifar10_missing_error(places):
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR10(root=places["root"])
    message = str(info.value)
    assert "data_batch_1.bin" in message
    assert str(places["root"] / "cifar-10-batches-bin") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message


SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.parametrize("train, size", [(True, 60000), (False, 10000)])
def test_real_fashion_mnist(monkeypatch, tmp_path, train, size):
    monkeypatch.delenv("JUANJI_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    ds = FashionMNIST(train=train, download=False)
    assert ds.root == SYSTEM_FASHION_MNIST
    assert ds.images.shape == (size, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.min() == 0 and ds.labels.max() == 9
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [size // 10] * 10)
    assert 0 < ds.images.mean() < 255
    assert read_idx(SYSTEM_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").shape == (10000,)
