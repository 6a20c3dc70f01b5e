import hashlib

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
    assert search_locations("fashion-mnist", root=root) == [root, root / "fashion-mnist"]
    assert search_locations("fashion-mnist") == [
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
        places["env"] / "fashion-mnist",
        places["env"],
        places["home"] / ".cache" / "juanji" / "fashion-mnist",
        places["system"] / "fashion-mnist",
    ]
    for i, folder in enumerate(folders):
        make_mnist_files(folder, fill=10 * i)
    for i, folder in enumerate(folders):
        ds = FashionMNIST(download=False)
        assert ds.root == folder
        assert ds.images[0, 0, 0] == 10 * i
        for path in folder.glob("*-ubyte.gz"):
            path.unlink()


def test_explicit_root_or_its_dataset_subfolder(places):
    make_mnist_files(places["system"] / "fashion-mnist", fill=1)
    make_mnist_files(places["root"] / "fashion-mnist", fill=2)
    assert FashionMNIST(root=places["root"], download=False).images[0, 0, 0] == 2
    make_mnist_files(places["root"], fill=3)
    assert FashionMNIST(root=places["root"], download=False).images[0, 0, 0] == 3


def root_error(root, cls=FashionMNIST, **kwargs):
    with pytest.raises(DatasetNotFoundError) as info:
        cls(root=root, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.searched[0] == root
    return message


def test_explicit_root_that_is_missing_is_an_error_not_a_fallback(places, tmp_path, monkeypatch):
    make_mnist_files(places["system"] / "fashion-mnist")
    make_mnist_files(places["env"])
    make_files = tmp_path / "server"
    make_mnist_files(make_files)
    serve_from(monkeypatch, make_files)  # download=True must not fetch either
    message = root_error(places["root"])
    assert f"data root {places['root']}" in message
    assert f"{places['root']} does not exist" in message
    assert "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]" in message
    assert str(places["root"] / "fashion-mnist") in message
    assert str(places["system"]) not in message
    assert not (places["home"] / ".cache").exists()


def test_explicit_root_that_is_a_file(places):
    places["root"].write_bytes(b"")
    message = root_error(places["root"], download=False)
    assert f"{places['root']} is not a folder" in message


def test_explicit_root_that_is_a_symlink_loop(places):
    make_mnist_files(places["system"] / "fashion-mnist")
    places["root"].symlink_to(places["root"])
    message = root_error(places["root"], download=False)
    assert f"{places['root']}: Too many levels of symbolic links" in message


def test_explicit_root_with_a_folder_where_a_file_should_be(places):
    make_mnist_files(places["system"] / "fashion-mnist")
    make_mnist_files(places["root"])
    (places["root"] / "train-labels-idx1-ubyte.gz").unlink()
    (places["root"] / "train-labels-idx1-ubyte.gz").mkdir()
    (places["root"] / "fashion-mnist").mkdir()
    message = root_error(places["root"], download=False)
    root = places["root"]
    assert f"in {root}: train-labels-idx1-ubyte.gz is a folder" in message
    assert f"in {root / 'fashion-mnist'}: train-images-idx3-ubyte[.gz] missing, " \
           f"train-labels-idx1-ubyte[.gz] missing" in message


def test_explicit_root_with_a_file_missing(places):
    make_mnist_files(places["env"])
    make_mnist_files(places["root"])
    (places["root"] / "t10k-images-idx3-ubyte.gz").unlink()
    (places["root"] / "t10k-labels-idx1-ubyte.gz").unlink()
    (places["root"] / "t10k-labels-idx1-ubyte.gz").symlink_to(places["root"] / "nowhere")
    message = root_error(places["root"], MNIST, train=False)
    assert f"MNIST (test split) not found in the data root {places['root']}" in message
    assert "t10k-images-idx3-ubyte[.gz] missing" in message
    assert "t10k-labels-idx1-ubyte.gz is a broken link" in message


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
        FashionMNIST(download=False)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.searched == search_locations("fashion-mnist")
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
        CIFAR10()
    message = str(info.value)
    assert "data_batch_1.bin" in message
    assert str(places["env"] / "cifar-10-batches-bin") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message


def test_cifar10_explicit_root_is_the_only_place_searched(places):
    make_cifar_files(places["env"] / "cifar-10-batches-bin")
    make_cifar_files(places["root"] / "cifar-10-batches-bin")
    (places["root"] / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
    assert len(CIFAR10(root=places["root"], train=False)) == 3
    message = root_error(places["root"], CIFAR10)
    assert f"in {places['root']}: data_batch_1.bin missing" in message
    assert f"in {places['root'] / 'cifar-10-batches-bin'}: data_batch_3.bin missing" in message
    assert "Expected data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin " \
           "and data_batch_5.bin in" in message


@pytest.mark.slow
@pytest.mark.parametrize("train, size", [(True, 60000), (False, 10000)])
def test_real_fashion_mnist(train, size):
    """The real set, wherever the normal search finds it; skipped on a machine without it."""
    try:
        ds = FashionMNIST(train=train, download=False)
    except DatasetNotFoundError as err:
        pytest.skip(f"no local copy of Fashion-MNIST: {err}")
    assert ds.root in search_locations("fashion-mnist")
    assert ds.images.shape == (size, 28, 28) and ds.images.dtype == np.uint8
    assert ds.labels.min() == 0 and ds.labels.max() == 9
    np.testing.assert_array_equal(np.bincount(ds.labels, minlength=10), [size // 10] * 10)
    assert 0 < ds.images.mean() < 255
    labels = next(ds.root.glob("t10k-labels-idx1-ubyte*"))
    assert read_idx(labels).shape == (10000,)
