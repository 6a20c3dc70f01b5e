"""Datasets read from folders of image files: ImageFolder (classification) and
SegmentationFolder (images with class-index masks).

Both decode every file once into uint8 arrays, ``.images`` (N, H, W, C), so the DataLoader
slices whole batches from memory (its fast path). ImageFolder keeps the decoded array in a
cache folder: a raw memory-mapped file ``images.u8`` beside ``manifest.json``, which records
each file's relative path, size in bytes and modification time (ns); when any of those change
(or a file is added or removed) the cache is rebuilt, otherwise an epoch never touches the
image files again. Decoding goes through ``juanji.viz.images.read_image`` (Pillow, with its
pixel limit), in blocks of files spread over juanji's thread pool (``juanji.backend``).
"""

import hashlib
import json
import operator
import os
from pathlib import Path

import numpy as np

from juanji.backend import parallel_map
from juanji.data.datasets import ArrayDataset, Dataset
from juanji.io.files import atomic_write_text
from juanji.viz.images import MAX_IMAGE_PIXELS, read_image, resize

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GRAY_MODES = ("1", "L", "I", "I;16", "F")  # Pillow modes that read_image keeps grayscale
CACHE_VERSION = 1
DECODE_BLOCK = 256  # files decoded per task of the thread pool


def default_cache_root():
    """Where ImageFolder caches go by default: ``~/.cache/juanji/folders``."""
    return Path.home() / ".cache" / "juanji" / "folders"


def _extensions():
    return ", ".join(IMG_EXTENSIONS)


def _check_root(root, what):
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{what} path is not a folder: {root}")
    return root


def _image_files(folder):
    """(image paths, number of other files) under ``folder``, searched recursively, in
    torchvision's order: folders sorted by path, files sorted by name within each."""
    images, skipped = [], 0  # paths as strings: pathlib costs seconds for 60000 files
    for dirpath, _, filenames in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(filenames):
            if name.lower().endswith(IMG_EXTENSIONS):
                images.append(os.path.join(dirpath, name))
            else:
                skipped += 1
    return images, skipped


def _check_size(size):
    """None, an int (square) or (H, W) of positive ints -> None or (H, W)."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                 for s in pair):
        raise ValueError(f"size must be None, a positive int or (H, W); got size={size!r}")
    return pair


def _check_mode(mode):
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be None, 'L' or 'RGB'; got mode={mode!r}")
    return mode


def _header(path):
    """(Pillow mode, (H, W)) read from the file's header; ValueError naming an unreadable file."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode, (img.size[1], img.size[0])
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def _common_mode_and_size(paths, headers, mode, size):
    """The mode ("L" when every file is grey, else "RGB", unless given) and the one (H, W)
    that all images share or are resized to; mixed sizes without ``size`` are an error."""
    if mode is None:
        mode = "L" if all(m in GRAY_MODES for m, _ in headers) else "RGB"
    if size is None:
        first = headers[0][1]
        other = next((i for i, (_, s) in enumerate(headers) if s != first), None)
        if other is not None:
            (h0, w0), (h1, w1) = first, headers[other][1]
            raise ValueError(f"images differ in size: {paths[0]} is {h0}x{w0} (HxW) but "
                             f"{paths[other]} is {h1}x{w1}; give size=(H, W) to resize them all "
                             f"to one size")
        size = first
    return mode, size


def decode(path, mode, size, max_pixels=MAX_IMAGE_PIXELS):
    """One image file -> uint8 (H, W, C) of ``mode`` ("L": C=1, "RGB": C=3), resized
    (bilinear) to ``size`` (H, W) when it differs. Errors name the file."""
    image = read_image(path, mode=mode, max_pixels=max_pixels)  # float32 (H, W[, 3]) in [0, 1]
    if image.shape[:2] != tuple(size):
        image = resize(image, size)
    image = np.rint(image * 255).astype(np.uint8)
    return image[..., None] if image.ndim == 2 else image  # (H, W, C)


class ImageFolder(ArrayDataset):
    """Images in class folders: ``root/<class>/<...>/<image>``, torchvision's convention.

    ``classes`` are the sub-folder names sorted, ``class_to_idx`` maps each to its index,
    ``samples`` lists (path, class index) in class then path order, ``targets`` the indices.
    Files ending in png, jpg, jpeg, bmp, gif, webp, tif or tiff are read (any case); other files
    are skipped and counted in ``skipped``.

    ``mode`` "L" or "RGB" (None: "L" when every file is grayscale, else "RGB"); ``size``
    (H, W) or an int resizes every image to it (bilinear); without it all images must share one
    size. ``.images`` is uint8 (N, H, W, C), ``.labels`` int64 (N,); ``ds[i]`` returns
    ``(transform(images[i]), targets[i])`` and the DataLoader transforms whole batches.

    ``cache``: True keeps the decoded images in ``~/.cache/juanji/folders/<key>``, where the key
    hashes the absolute root, mode and size; a path keeps them there instead; False decodes into
    memory every time. ``from_cache`` tells whether this instance read a valid cache.
    """

    def __init__(self, root, transform=None, *, mode=None, size=None, cache=True):
        self.root = _check_root(root, "image")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None; got {type(transform).__name__}")
        self.transform = transform
        mode, size = _check_mode(mode), _check_size(size)
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            loose = _image_files(self.root)[0]
            hint = (f"; it holds {len(loose)} images directly, which need a sub-folder per class"
                    if loose else "")
            raise ValueError(f"no class folders in {self.root}: expected one sub-folder per "
                             f"class holding its images{hint}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples, self.skipped = [], 0
        for name in self.classes:
            files, skipped = _image_files(self.root / name)
            if not files:
                raise ValueError(f"class folder {self.root / name} has no images: expected "
                                 f"files ending in {_extensions()}"
                                 + (f" ({skipped} other files skipped)" if skipped else ""))
            self.samples += [(path, self.class_to_idx[name]) for path in files]
            self.skipped += skipped
        self.targets = [target for _, target in self.samples]
        self.labels = np.array(self.targets, dtype=np.int64)  # (N,)

        paths = [path for path, _ in self.samples]
        self.cache_dir = self._cache_dir(cache, mode, size)
        # what a cache must match: every file unchanged, and the same options
        key = {"version": CACHE_VERSION, "files": self._stats(paths),
               "requested": [mode, list(size) if size else None]}
        self.from_cache = False
        if self.cache_dir is not None:
            cached = self._open_cache(key)
            if cached is not None:
                self.images, self.mode = cached
                self.from_cache = True
                return
        headers = [_header(path) for path in paths]
        self.mode, size = _common_mode_and_size(paths, headers, mode, size)
        self.images = self._decode_all(paths, size, key)

    # ---- cache ----------------------------------------------------------------------------------
    def _cache_dir(self, cache, mode, size):
        if cache is False or cache is None:
            return None
        if cache is True:
            key = json.dumps([str(self.root.resolve()), mode, size, CACHE_VERSION])
            digest = hashlib.sha256(key.encode()).hexdigest()[:16]
            return default_cache_root() / digest
        if isinstance(cache, (str, os.PathLike)):
            return Path(cache).expanduser()
        raise TypeError(f"cache must be True, False or a folder path; got "
                        f"{type(cache).__name__}")

    def _stats(self, paths):
        """[relative path, size in bytes, mtime in ns] per file: what the manifest records."""
        stats, prefix = [], len(str(self.root)) + 1  # every path starts with root + os.sep
        for path in paths:
            st = os.stat(path)
            stats.append([path[prefix:].replace(os.sep, "/"), st.st_size, st.st_mtime_ns])
        return stats

    def _open_cache(self, key):
        """(images memmap, mode) when the cache's manifest matches ``key``, else None."""
        try:
            manifest = json.loads((self.cache_dir / "manifest.json").read_text())
            if any(manifest.get(name) != value for name, value in key.items()):
                return None
            shape = tuple(manifest["shape"])
            data = self.cache_dir / "images.u8"
            if data.stat().st_size != int(np.prod(shape)):
                return None
            return np.memmap(data, dtype=np.uint8, mode="r", shape=shape), manifest["mode"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _decode_all(self, paths, size, key):
        """Decode every file into (N, H, W, C) uint8: into the cache's memmap when caching."""
        shape = (len(paths), size[0], size[1], 1 if self.mode == "L" else 3)
        if self.cache_dir is None:
            images = np.empty(shape, np.uint8)
        else:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f"images.u8.{os.getpid()}.tmp"
            images = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)

        def decode_block(start):  # files start .. start + DECODE_BLOCK - 1, in one thread
            for i in range(start, min(start + DECODE_BLOCK, len(paths))):
                try:
                    images[i] = decode(paths[i], self.mode, size)
                except ValueError as exc:
                    raise ValueError(f"{exc} (image {i + 1} of {len(paths)} under {self.root}; "
                                     f"expected an image file in {_extensions()})") from None

        try:  # Pillow decodes without the GIL, so the blocks run on every core
            parallel_map(decode_block, range(0, len(paths), DECODE_BLOCK))
        except BaseException:  # leave no half-written cache behind
            if self.cache_dir is not None:
                tmp.unlink(missing_ok=True)
            raise
        if self.cache_dir is None:
            return images
        images.flush()
        (self.cache_dir / "manifest.json").unlink(missing_ok=True)  # invalid from here on
        os.replace(tmp, self.cache_dir / "images.u8")
        # the manifest last: a cache with a stale or missing manifest is rebuilt
        manifest = {**key, "root": str(self.root.resolve()), "mode": self.mode,
                    "shape": list(shape)}
        atomic_write_text(self.cache_dir / "manifest.json", json.dumps(manifest))
        return np.memmap(self.cache_dir / "images.u8", dtype=np.uint8, mode="r", shape=shape)


    def __repr__(self):
        return (f"ImageFolder(root={str(self.root)!r}, n={len(self)}, classes={len(self.classes)}"
                f", mode={self.mode!r}, image_shape={self.images.shape[1:]})")


def _by_stem(folder, what):
    """{file stem: path} of the images in ``folder`` (not recursive); a stem twice is an error."""
    found = {}
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.suffix.lower() in IMG_EXTENSIONS):
            continue
        if path.stem in found:
            raise ValueError(f"two {what} files share the stem {path.stem!r}: {found[path.stem]} "
                             f"and {path}; keep one per stem")
        found[path.stem] = path
    return found


def read_mask(path, max_pixels=MAX_IMAGE_PIXELS):
    """A class-index mask file (palette "P" or grey "L"/"1") -> uint8 (H, W) of indices.

    A palette image gives its palette indices, not colours. Errors name the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ValueError(f"mask {path} is too large: {width}x{height} pixels, over the "
                                 f"limit of {max_pixels}")
            if img.mode not in ("P", "L", "1"):
                raise ValueError(f"mask {path} has mode {img.mode!r}; expected a class-index "
                                 f"image: palette ('P') or grey ('L')")
            return np.asarray(img, dtype=np.uint8)  # (H, W); mode "1" reads as 0/1
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"cannot read mask {path}: {exc}") from None


class SegmentationFolder(Dataset):
    """Images with per-pixel class masks: ``root/images/<stem>.<ext>`` and
    ``root/masks/<stem>.<ext>``, paired by file stem (masks are class-index PNGs, palette or
    grey; each pixel's value is its class).

    ``.images`` uint8 (N, H, W, C) (``mode`` and ``size`` as ImageFolder's), ``.masks`` uint8
    (N, H, W), also available as ``.labels`` so that the DataLoader's fast path slices both;
    ``.stems`` the sorted stems. ``num_classes`` is max(mask value) + 1 unless given, when
    every value must lie below it. With ``size``, images are resized bilinearly and masks by
    nearest neighbour; without it, every image must match its mask and all share one size.
    ``transform``, when given, is a batch transform of (images, masks) pairs
    (``transform.batch(images, masks)``, e.g. a ``transforms.Compose`` starting with
    ``ToFloat()``); ``ds[i]`` returns (image, mask) transformed together. Decoded in memory,
    no cache.
    """

    def __init__(self, root, transform=None, *, mode=None, size=None, num_classes=None):
        self.root = _check_root(root, "segmentation")
        if transform is not None and not callable(getattr(transform, "batch", None)):
            raise TypeError(f"transform must have a batch(images, masks) method or be None; got "
                            f"{type(transform).__name__}")
        self.transform = transform
        mode, size = _check_mode(mode), _check_size(size)
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int or None; got "
                             f"num_classes={num_classes!r}")
        folders = {}
        for name in ("images", "masks"):
            folder = self.root / name
            if not folder.is_dir():
                raise ValueError(f"{self.root} needs a sub-folder {name}/ (images/ with the "
                                 f"pictures, masks/ with one class-index PNG per picture, same "
                                 f"file stem); {folder} is missing or not a folder")
            folders[name] = _by_stem(folder, name[:-1])
        images, masks = folders["images"], folders["masks"]
        if not images:
            raise ValueError(f"{self.root / 'images'} has no images: expected files ending in "
                             f"{_extensions()}")
        for stem, path in masks.items():
            if stem not in images:
                raise ValueError(f"mask {path} has no image: expected "
                                 f"{self.root / 'images' / stem}.<png|jpg|...>")
        for stem, path in images.items():
            if stem not in masks:
                raise ValueError(f"image {path} has no mask: expected "
                                 f"{self.root / 'masks' / stem}.png")
        self.stems = sorted(images)
        image_paths = [images[stem] for stem in self.stems]
        mask_paths = [masks[stem] for stem in self.stems]

        headers = [_header(path) for path in image_paths]
        if size is None:
            for path, mask, (_, shape) in zip(image_paths, mask_paths, headers):
                mask_shape = _header(mask)[1]
                if mask_shape != shape:
                    raise ValueError(f"image {path} is {shape[0]}x{shape[1]} (HxW) but its mask "
                                     f"{mask} is {mask_shape[0]}x{mask_shape[1]}; they must "
                                     f"match (or give size=(H, W) to resize both)")
        self.mode, size = _common_mode_and_size(image_paths, headers, mode, size)
        self.images = np.stack([decode(path, self.mode, size) for path in image_paths])
        self.masks = np.stack([self._mask(path, size) for path in mask_paths])  # (N, H, W)
        self.labels = self.masks
        top = int(self.masks.max())
        if num_classes is None:
            num_classes = top + 1
        elif top >= num_classes:
            i = int(np.argmax(self.masks.reshape(len(self.masks), -1).max(axis=1) >= num_classes))
            value = int(self.masks[i][self.masks[i] >= num_classes][0])
            raise ValueError(f"mask {mask_paths[i]} has the value {value}, but num_classes="
                             f"{num_classes}: class indices must lie in 0..{num_classes - 1}")
        self.num_classes = num_classes

    @staticmethod
    def _mask(path, size):
        mask = read_mask(path)
        if mask.shape != tuple(size):
            from PIL import Image

            resized = Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST)
            mask = np.asarray(resized, dtype=np.uint8)
        return mask

    def __len__(self):
        return len(self.stems)

    def __getitem__(self, index):
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a dataset of {len(self)} "
                             f"samples")
        image, mask = self.images[index], self.masks[index]
        if self.transform is not None:
            images, masks = self.transform.batch(image[None], mask[None])
            return images[0], masks[0]
        return image, mask

    def __repr__(self):
        return (f"SegmentationFolder(root={str(self.root)!r}, n={len(self)}, num_classes="
                f"{self.num_classes}, image_shape={self.images.shape[1:]})")
