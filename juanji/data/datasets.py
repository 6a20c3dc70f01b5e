"""Datasets: in-memory arrays of images and labels, and the standard classification sets.

A dataset answers ``len(ds)`` and ``ds[i] -> (image, label)``. Datasets that keep their samples
as arrays (``ArrayDataset`` and everything built on it) expose ``.images`` (N, ...),
``.labels`` (N,) int64 and ``.transform``, and promise ``ds[i] == (transform(images[i]),
labels[i])``; the DataLoader relies on that promise to transform whole batches at once.

The standard sets are looked up on disk, in the order given by ``search_locations``. An
explicit ``root`` is the only place searched: when it lacks the files the error says what is
wrong there, with no fallback and no download. Without a root, MNIST and Fashion-MNIST are
downloaded (into ``~/.cache/juanji/<name>``, checksum-verified) when no copy is found and
``download`` is true.
"""

import hashlib
import http.client
import operator
import os
import stat
import urllib.request
from pathlib import Path

import numpy as np

from juanji.data.idx import read_idx
from juanji.io.files import atomic_write_bytes

# Debian's dataset-* packages install here, e.g. /usr/share/datasets/fashion-mnist/*.gz.
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT_S = 60


class DatasetNotFoundError(FileNotFoundError):
    """No copy of a dataset was found on disk and none could be downloaded.

    ``searched`` lists the folders that were looked in, in order.
    """

    def __init__(self, message, searched):
        super().__init__(message)
        self.searched = list(searched)


def search_locations(name, root=None):
    """Folders searched for dataset ``name``, in order.

    With ``root``: ``root`` and ``root/<name>``, nothing else. Without it:

    1. ``$JUANJI_DATA/<name>`` and ``$JUANJI_DATA``, when the variable is set;
    2. ``~/.cache/juanji/<name>`` (where downloads go, see ``cache_dir``);
    3. ``/usr/share/datasets/<name>`` (Debian's dataset packages).
    """
    if root is not None:
        root = Path(root).expanduser()
        return [root, root / name]
    places = []
    env = os.environ.get("JUANJI_DATA")
    if env:
        env = Path(env).expanduser()
        places += [env / name, env]
    places += [cache_dir(name), SYSTEM_DATA_DIR / name]
    return places


def cache_dir(name):
    """Folder that downloads of dataset ``name`` are written to: ``~/.cache/juanji/<name>``."""
    return Path.home() / ".cache" / "juanji" / name


def find_files(places, names, suffixes=("", ".gz")):
    """Paths of ``names`` in the first folder of ``places`` that holds all of them, or None.

    Each name may appear with any of ``suffixes`` (tried in order), e.g. plain or gzipped.
    """
    for folder in places:
        found = []
        for name in names:
            candidates = [folder / (name + suffix) for suffix in suffixes]
            found.append(next((path for path in candidates if path.is_file()), None))
        if all(found):
            return found
    return None


def find_in_root(places, names, suffixes, what):
    """``find_files`` for an explicit root (``places[0]``, then folders inside it).

    Raises ``DatasetNotFoundError`` naming the root, what is wrong in each folder (the root
    missing, not a folder or unreadable; a file missing, a folder or a broken link) and the
    files expected there.
    """
    found = find_files(places, names, suffixes)
    if found:
        return found
    root = places[0]
    problems = [_root_problem(root)]
    if problems[0] is None:
        problems = [_folder_problem(folder, names, suffixes) for folder in places]
    wanted = [name + "".join(f"[{s}]" for s in suffixes if s) for name in names]
    wanted = " and ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 1 else wanted)
    raise DatasetNotFoundError(
        f"{what} not found in the data root {root}, the only place searched when a root is "
        f"given: {'; '.join(p for p in problems if p)}. Expected {wanted} in "
        f"{' or '.join(str(place) for place in places)}.", places)


def _root_problem(root):
    """Why ``root`` is not a readable folder, or None when it is."""
    try:
        if not stat.S_ISDIR(root.stat().st_mode):
            return f"{root} is not a folder"
        with os.scandir(root) as entries:
            next(entries, None)
    except FileNotFoundError:
        return f"{root} does not exist"
    except OSError as err:
        return f"{root}: {err.strerror}"
    return None


def _folder_problem(folder, names, suffixes):
    """What ``folder`` lacks of ``names``; None when it is not a folder (nothing to report)."""
    if not folder.is_dir():
        return None
    problems = []
    for name in names:
        candidates = [folder / (name + suffix) for suffix in suffixes]
        if any(path.is_file() for path in candidates):
            continue
        odd = next((path for path in candidates if os.path.lexists(path)), None)
        if odd is None:
            problems.append(name + "".join(f"[{s}]" for s in suffixes if s) + " missing")
        elif odd.is_dir():
            problems.append(f"{odd.name} is a folder")
        elif odd.is_symlink():
            problems.append(f"{odd.name} is a broken link")
        else:
            problems.append(f"{odd.name} is not a regular file")
    return f"in {folder}: {', '.join(problems)}"


class Dataset:
    """Base class: ``len(ds)`` samples, ``ds[i] -> (image, label)``."""

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


class ArrayDataset(Dataset):
    """Images (N, ...) and integer labels (N,) held in memory.

    ``ds[i]`` returns ``(transform(images[i]), int(labels[i]))``; without a transform the
    image is returned as stored. ``labels`` are kept as int64.
    """

    def __init__(self, images, labels, transform=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim < 1:
            raise ValueError(f"images must have a leading sample axis (N, ...); got a scalar "
                             f"of shape {images.shape}")
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D (N,); got shape {labels.shape}")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
        if len(images) != len(labels):
            raise ValueError(f"images and labels must have the same length; got "
                             f"{len(images)} images and {len(labels)} labels")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} "
                             f"samples")
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self):
        return f"{type(self).__name__}(n={len(self)}, image_shape={self.images.shape[1:]})"


class _MNISTFormat(ArrayDataset):
    """Shared loader for the MNIST-format sets: 28x28 uint8 images in IDX files, 10 classes.

    Subclasses set ``name`` (folder name), ``title``, ``base_url``, ``md5`` (per .gz file),
    ``class_names`` and ``install_hint``.
    """

    name = title = base_url = install_hint = ""
    md5 = {}
    class_names = ()

    def __init__(self, root=None, train=True, transform=None, download=True):
        prefix, split = ("train", "train") if train else ("t10k", "test")
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        places = search_locations(self.name, root)
        if root is not None:
            paths = find_in_root(places, names, ("", ".gz"), f"{self.title} ({split} split)")
        else:
            paths = find_files(places, names) or self._download(names, places, split, download)
        images_path, labels_path = paths
        images, labels = read_idx(images_path), read_idx(labels_path)

        if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
            raise ValueError(f"{images_path}: expected uint8 images of shape (N, 28, 28); "
                             f"got {images.dtype} of shape {images.shape}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(f"{labels_path}: expected uint8 labels of shape (N,); "
                             f"got {labels.dtype} of shape {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                             f"holds {len(labels)} labels; they must agree")
        if labels.size and labels.max() >= len(self.class_names):
            raise ValueError(f"{labels_path}: labels must lie in 0..{len(self.class_names) - 1}; "
                             f"found {labels.max()}")

        super().__init__(images, labels, transform)
        self.train = train
        self.root = images_path.parent
        self.classes = list(self.class_names)

    def _download(self, names, places, split, download):
        """Fetch ``names`` into the cache folder, verifying MD5s; return their paths."""
        wanted = " and ".join(f"{name}[.gz]" for name in names)
        where = ", ".join(str(place) for place in places)
        missing = f"{self.title} ({split} split) not found: looked for {wanted} in {where}"
        if not download:
            raise DatasetNotFoundError(f"{missing}; download=False. {self.install_hint}", places)

        paths = []
        for name in names:
            dest = cache_dir(self.name) / f"{name}.gz"
            url = f"{self.base_url}{name}.gz"
            try:
                if not dest.is_file():
                    download_file(url, dest, self.md5[f"{name}.gz"])
            except (OSError, ValueError, http.client.HTTPException) as err:
                raise DatasetNotFoundError(f"{missing}; download from {url} failed ({err}). "
                                           f"{self.install_hint}", places) from None
            paths.append(dest)
        return paths


class FashionMNIST(_MNISTFormat):
    """Fashion-MNIST: 60000 train / 10000 test grayscale 28x28 images of 10 clothing classes.

    ``.images`` uint8 (N, 28, 28), ``.labels`` int64 (N,), ``.classes`` the 10 names.
    Looks in ``search_locations("fashion-mnist", root)``, then downloads when ``download``.
    """

    name = "fashion-mnist"
    title = "Fashion-MNIST"
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5 = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    install_hint = ("To get it: `apt-get install dataset-fashion-mnist`, or put the four "
                    "*-ubyte.gz files in a folder and set JUANJI_DATA to it.")


class MNIST(_MNISTFormat):
    """MNIST: 60000 train / 10000 test grayscale 28x28 images of handwritten digits 0-9.

    ``.images`` uint8 (N, 28, 28), ``.labels`` int64 (N,), ``.classes`` the 10 names.
    Looks in ``search_locations("mnist", root)``, then downloads when ``download``.
    """

    name = "mnist"
    title = "MNIST"
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    md5 = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                   "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine")
    install_hint = (f"To get it: download the four *-ubyte.gz files from {base_url} into a "
                    f"folder and set JUANJI_DATA to it.")


def download_file(url, dest, md5):
    """Fetch ``url`` into ``dest`` atomically after checking its MD5 hex digest.

    Raises ``ValueError`` on a checksum mismatch (nothing is written) and ``OSError`` when
    the fetch fails.
    """
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        data = response.read()
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if digest != md5:
        raise ValueError(f"checksum mismatch: expected md5 {md5}, got {digest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)


CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32  # one label byte, then the R, G and B 32x32 planes


def read_cifar10_batch(path):
    """Read one CIFAR-10 binary batch file into (images, labels).

    Returns images uint8 (N, 3, 32, 32) and labels int64 (N,). The file must be a whole,
    non-zero number of 3073-byte records and every label must lie in 0..9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR10_RECORD_BYTES:
        raise ValueError(f"{path}: a CIFAR-10 binary batch must be a whole, non-zero number of "
                         f"{CIFAR10_RECORD_BYTES}-byte records; got {raw.size} bytes "
                         f"({raw.size % CIFAR10_RECORD_BYTES} past the last whole record)")
    records = raw.reshape(-1, CIFAR10_RECORD_BYTES)  # (N, 1 + C*H*W)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: CIFAR-10 labels must lie in 0..9; found {labels.max()}")
    images = records[:, 1:].reshape(-1, 3, 32, 32)  # (N, C, H, W), planes stored channel-first
    return np.ascontiguousarray(images), labels


class CIFAR10(ArrayDataset):
    """CIFAR-10, binary version: 50000 train / 10000 test colour 32x32 images, 10 classes.

    ``.images`` uint8 (N, 3, 32, 32) (channel-first, as stored in the files), ``.labels``
    int64 (N,), ``.classes`` the 10 names. Reads ``data_batch_1.bin`` ... ``data_batch_5.bin``
    or ``test_batch.bin`` from the first of ``search_locations("cifar-10", root)`` (or its
    ``cifar-10-batches-bin/`` subfolder) that holds them all. Never downloads.
    """

    name = "cifar-10"
    class_names = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
    url = "https://www.cs.toronto.edu/~kriz/cifar.html"

    def __init__(self, root=None, train=True, transform=None):
        if train:
            names = [f"data_batch_{i}.bin" for i in range(1, 6)]
        else:
            names = ["test_batch.bin"]
        places = []
        for folder in search_locations(self.name, root):
            places += [folder, folder / "cifar-10-batches-bin"]
        if root is not None:
            what = f"CIFAR-10 ({'train' if train else 'test'} split)"
            paths = find_in_root(places, names, ("",), what)
        else:
            paths = find_files(places, names, suffixes=("",))
        if paths is None:
            where = ", ".join(str(place) for place in places)
            raise DatasetNotFoundError(
                f"CIFAR-10 ({'train' if train else 'test'} split) not found: looked for "
                f"{', '.join(names)} in {where}. To get it: download the binary version "
                f"(cifar-10-binary.tar.gz) from {self.url}, extract it, and set JUANJI_DATA "
                f"to the folder holding cifar-10-batches-bin/.", places)

        batches = [read_cifar10_batch(path) for path in paths]
        images = np.concatenate([images for images, _ in batches])  # (N, 3, 32, 32)
        labels = np.concatenate([labels for _, labels in batches])  # (N,)
        super().__init__(images, labels, transform)
        self.train = train
        self.root = paths[0].parent
        self.classes = list(self.class_names)
