"""`juanji train --data FOLDER`: class folders read into arrays, split, and their statistics.

A data folder is either ``PATH/train`` with ``PATH/test`` (or ``PATH/val``), each holding one
sub-folder per class, or one folder of class folders that is split into train and validation
sets by ``val_split`` with a generator seeded from the run's seed (the same split every time).
Images are read by ``juanji.data.ImageFolder`` (decoded once into its cache) and kept as uint8
NCHW arrays, so the DataLoader slices and transforms whole batches.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from juanji.cli import CLIError


def parse_image_size(text):
    """An argparse type: "HxW" or "N" (square) -> [H, W] of positive ints."""
    parts = text.lower().split("x")
    try:
        size = [int(p) for p in parts]
    except ValueError:
        size = []
    if len(size) == 1:
        size *= 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 64x48) or N; got {text!r}")
    return size


def parse_fraction(text):
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1; got {text!r}")
    return value


def resolve_folder(text):
    """The absolute path of a --data folder; CLIError when it is not a folder."""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise CLIError(f"--data must be a dataset name (cifar10, fashion-mnist, mnist) or a "
                       f"folder of class folders; got {text!r}, "
                       f"{'not a folder' if path.exists() else 'which does not exist'}",
                       usage=True)
    return str(path.resolve())


def _image_folder(root, mode, size):
    from juanji.data import ImageFolder

    folder = ImageFolder(root, mode=mode, size=None if size is None else tuple(size))
    images = np.ascontiguousarray(np.asarray(folder.images).transpose(0, 3, 1, 2))  # (N,C,H,W)
    return folder, images, folder.labels


def load_folder(path, image_size, val_split, seed):
    """(train (images, labels), test (images, labels), classes, mode) of a data folder.

    Images are uint8 (N, C, H, W), labels int64 (N,). The test part is ``path/test`` or
    ``path/val`` when ``path/train`` exists (read in the training part's mode and size, with
    the same classes), else a ``val_split`` fraction of ``path`` drawn with ``seed``.
    """
    root = Path(path)
    if (root / "train").is_dir():
        held_out = held_out_part(root, "the class folders")
        folder, images, labels = _image_folder(root / "train", None, image_size)
        test, test_images, test_labels = _image_folder(held_out, folder.mode,
                                                       image_size or images.shape[2:])
        if test.classes != folder.classes:
            raise CLIError(f"{held_out} has the classes {test.classes} but {root / 'train'} has "
                           f"{folder.classes}; both need the same class folders")
        return (images, labels), (test_images, test_labels), folder.classes, folder.mode
    folder, images, labels = _image_folder(root, None, image_size)
    train_index, test_index = split_indices(len(labels), val_split, seed, root)
    return ((images[train_index], labels[train_index]),
            (images[test_index], labels[test_index]), folder.classes, folder.mode)


def held_out_part(root, layout):
    """``root``/test, else ``root``/val, beside ``root``/train; refused when neither exists
    (``layout``: what could go directly in ``root`` instead, for the message)."""
    held_out = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if held_out is None:
        raise CLIError(f"{root} has train/ but neither test/ nor val/; add one, or put "
                       f"{layout} directly in {root} to split off --val-split")
    return held_out


def split_indices(count, val_split, seed, root):
    """(train indices, held-out indices), each sorted: a ``val_split`` fraction of ``count``
    images (at least one) held out, drawn with a generator seeded by ``seed``."""
    held = max(1, int(round(count * val_split)))
    if held >= count:
        raise CLIError(f"{root} has {count} images: too few to hold out --val-split "
                       f"{val_split} of them and train on the rest")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def channel_stats(images):
    """Per-channel mean and std of uint8 (N, C, H, W) images scaled to [0, 1], as lists; a
    channel that never varies gets std 1 (Normalize needs a positive std)."""
    channels = images.shape[1]
    mean, std = [], []
    for c in range(channels):  # one channel at a time: no float copy of the whole set
        plane = images[:, c].astype(np.float64) / 255
        mean.append(float(plane.mean()))
        spread = float(plane.std())
        std.append(spread if spread > 0 else 1.0)
    return mean, std


def build_transform(size, mean, std, augment=None):
    """ToFloat, the augmentations of `augment` (none: left out) for images of `size` (H, W),
    then Normalize(mean, std): a whole-batch transform."""
    from juanji.data.transforms import Compose, Normalize, ToFloat, build_augmentation

    steps = [ToFloat()]
    if augment not in (None, "", "none"):
        steps.append(build_augmentation(augment, tuple(size)))
    return Compose([*steps, Normalize(mean, std)])


def folder_datasets(config):
    """(train set, test set) of a run on a data folder, config["data"].

    A new run's config (without "model_args") gets the folder's "classes", image "mode" and
    "image_size", the training images' per-channel "mean" and "std" (eval and predict reuse
    them) and "model_args"."""
    from juanji.data import ArrayDataset

    (images, labels), (test_images, test_labels), classes, mode = load_folder(
        config["data"], config.get("image_size"), config.get("val_split", 0.1), config["seed"])
    limit = config.get("limit")
    test_limit = None if limit is None else max(limit // 6, 1)  # as for the named datasets
    if "model_args" not in config:
        config.update(classes=classes, mode=mode, image_size=list(images.shape[2:]))
        config["mean"], config["std"] = channel_stats(images[:limit])
        set_model_args(config, images)
    size, mean, std = images.shape[2:], config["mean"], config["std"]
    train_set = ArrayDataset(images[:limit], labels[:limit],
                             transform=build_transform(size, mean, std, config.get("augment")))
    test_set = ArrayDataset(test_images[:test_limit], test_labels[:test_limit],
                            transform=build_transform(size, mean, std))
    return train_set, test_set


def parse_model_arg(text):
    """An argparse type: "NAME=VALUE" -> (NAME, VALUE), the value read as JSON where it is
    (8 -> 8, 0.5 -> 0.5, false -> False, [2, 2] -> [2, 2]), else kept as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. width=16); got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def set_model_args(config, images):
    """config["model_args"] from the data (images (N, C, H, W) or (N, H, W)): the number of
    config["classes"], the channels, and the input size where the model takes one and it
    differs from the model's default; then the arguments given with --model-arg
    (config["model_arg"], a dict), which may not override what the data decide."""
    import inspect

    from juanji.models import DEFAULT_INPUTS, MODELS, create_model

    if config["model"] not in MODELS:
        create_model(config["model"])  # the registry's error, listing the models
    channels = 1 if images.ndim == 3 else images.shape[1]
    model_args = {"num_classes": len(config["classes"]), "in_channels": channels}
    height, width = images.shape[-2:]
    parameters = inspect.signature(MODELS[config["model"]]).parameters
    if "input_size" in parameters and (height, width) != tuple(DEFAULT_INPUTS[config["model"]][1:]):
        model_args["input_size"] = height if height == width else [height, width]
    from_data = ("num_classes", "in_channels", "input_size")
    for name, value in (config.get("model_arg") or {}).items():
        if name in from_data:
            raise CLIError(f"--model-arg {name}={value!r}: {name} comes from the data "
                           f"({', '.join(from_data)} do; use --image-size for the size)",
                           usage=True)
        if name not in parameters:
            known = [p for p in parameters if p not in from_data]
            raise CLIError(f"--model-arg {name}={value!r}: {config['model']} has no argument "
                           f"{name!r}; it takes {', '.join(known) or 'none besides the data'}",
                           usage=True)
        model_args[name] = value
    config["model_args"] = model_args
