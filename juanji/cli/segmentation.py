"""`juanji train --task segmentation`: mask folders read, split and checked against the model;
`juanji eval`'s IoU report; `juanji predict`'s mask and overlay files.

A segmentation data folder is ``PATH/images`` with ``PATH/masks`` (juanji.data.SegmentationFolder:
the same file stems, masks of class indices), or ``PATH/train`` with ``PATH/test`` (or
``PATH/val``) each holding such a pair. A single pair is split by ``val_split`` with the run's
seed, as class folders are (juanji.cli.data). Images are kept as uint8 (N, C, H, W) and masks
as uint8 (N, H, W), so the DataLoader slices both and moves a mask with its image through the
augmentations.
"""

import inspect
from pathlib import Path

import numpy as np

from juanji.cli import CLIError
from juanji.cli.data import (
    build_transform,
    channel_stats,
    held_out_part,
    set_model_args,
    split_indices,
)
from juanji.data import Dataset

SEGMENTATION_MODELS = ("fcn16s", "fcn32s", "fcn8s", "unet")
OVERLAY_ALPHA = 0.5  # weight of the class colour in an overlay pixel


class MaskDataset(Dataset):
    """uint8 images (N, C, H, W) with their masks (N, H, W), also named ``labels`` so that the
    DataLoader slices both; ``transform.batch(images, masks)`` transforms them together."""

    def __init__(self, images, masks, transform=None):
        self.images, self.masks, self.labels = images, masks, masks
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image, mask = self.images[index], self.masks[index]
        if self.transform is None:
            return image, mask
        images, masks = self.transform.batch(image[None], mask[None])
        return images[0], masks[0]


def check_task(config):
    """Refuse a model or dataset that does not fit config["task"] (before anything is read)."""
    from juanji.cli.train import DATASETS

    model, segmentation = config["model"], config["task"] == "segmentation"
    if segmentation and model not in SEGMENTATION_MODELS:
        raise CLIError(f"--task segmentation needs a segmentation model ("
                       f"{', '.join(SEGMENTATION_MODELS)}); got --model {model}", usage=True)
    if segmentation and config["data"] in DATASETS:
        raise CLIError(f"--task segmentation needs a folder with images/ and masks/ given to "
                       f"--data; {config['data']} is a classification dataset", usage=True)
    if not segmentation and model in SEGMENTATION_MODELS:
        raise CLIError(f"--model {model} labels every pixel: give --task segmentation and a "
                       f"folder with images/ and masks/ to --data", usage=True)
    if not segmentation and config.get("num_classes") is not None:
        raise CLIError("--num-classes applies to --task segmentation (a classifier's classes "
                       "are its class folders)", usage=True)


def _read_pair(root, mode, size, num_classes):
    """(SegmentationFolder, images uint8 (N, C, H, W)) of ``root``/images and ``root``/masks."""
    from juanji.data import SegmentationFolder

    if not (root / "images").is_dir() and root.is_dir():
        found = sorted(entry.name for entry in root.iterdir() if entry.is_dir())
        if found:
            raise CLIError(f"--task segmentation expects {root / 'images'} and "
                           f"{root / 'masks'} (or train/ and test/ holding them); {root} holds "
                           f"the folders {', '.join(found[:5])}{', ...' if len(found) > 5 else ''}"
                           f", like class folders (train a classifier on those without --task "
                           f"segmentation)")
    folder = SegmentationFolder(root, mode=mode, size=None if size is None else tuple(size),
                                num_classes=num_classes)
    images = np.ascontiguousarray(folder.images.transpose(0, 3, 1, 2))  # (N, C, H, W)
    return folder, images


def load_segmentation_folder(path, image_size, val_split, seed, num_classes=None):
    """(train (images, masks), test (images, masks), mode, number of classes) of a data folder.

    Images uint8 (N, C, H, W), masks uint8 (N, H, W). ``num_classes`` None takes the largest
    training mask value + 1; the test masks must stay below it.
    """
    root = Path(path)
    if (root / "train").is_dir():
        held_out = held_out_part(root, "images/ and masks/")
        train, images = _read_pair(root / "train", None, image_size, num_classes)
        test, test_images = _read_pair(held_out, train.mode, image_size or images.shape[2:],
                                       train.num_classes)
        return (images, train.masks), (test_images, test.masks), train.mode, train.num_classes
    folder, images = _read_pair(root, None, image_size, num_classes)
    train_index, test_index = split_indices(len(images), val_split, seed, root)
    return ((images[train_index], folder.masks[train_index]),
            (images[test_index], folder.masks[test_index]), folder.mode, folder.num_classes)


def check_input_size(config):
    """Refuse an image size the model cannot take: U-Net needs H and W divisible by
    2**depth, the FCNs by 32."""
    from juanji.models import MODELS

    name, (height, width) = config["model"], config["image_size"]
    if name == "unet":
        depth = config["model_args"].get(
            "depth", inspect.signature(MODELS[name]).parameters["depth"].default)
        multiple, what = 2 ** depth, f"unet of depth {depth}"
    else:
        multiple, what = 32, name
    if height % multiple or width % multiple:
        up = [-(-side // multiple) * multiple for side in (height, width)]
        raise CLIError(f"{what} needs image height and width divisible by {multiple}; the "
                       f"images are {height}x{width}: give --image-size {up[0]}x{up[1]}",
                       usage=True)


def segmentation_datasets(config):
    """(train set, test set) of a segmentation run on the folder config["data"].

    A new run's config (without "model_args") gets "classes" (the class indices as names),
    the image "mode" and "image_size", the training images' per-channel "mean" and "std" and
    "model_args" (num_classes, in_channels, and the --model-arg values); a saved run's masks
    must stay below its number of classes."""
    new = "model_args" not in config
    num_classes = config.get("num_classes") if new else len(config["classes"])
    (images, masks), (test_images, test_masks), mode, num_classes = load_segmentation_folder(
        config["data"], config.get("image_size"), config.get("val_split", 0.1), config["seed"],
        num_classes)
    limit = config.get("limit")
    test_limit = None if limit is None else max(limit // 6, 1)  # as for the named datasets
    if new:
        config.update(classes=[str(k) for k in range(num_classes)], mode=mode,
                      image_size=list(images.shape[2:]))
        config["mean"], config["std"] = channel_stats(images[:limit])
        set_model_args(config, images)
        check_input_size(config)
    size, mean, std = images.shape[2:], config["mean"], config["std"]
    train_set = MaskDataset(images[:limit], masks[:limit],
                            build_transform(size, mean, std, config.get("augment")))
    test_set = MaskDataset(test_images[:test_limit], test_masks[:test_limit],
                           build_transform(size, mean, std))
    return train_set, test_set


def print_evaluation(config, cm, images, loss):
    """`juanji eval`'s report of a segmentation run from its pixel confusion matrix."""
    from juanji.metrics import mean_iou, per_class_accuracy, per_class_iou, pixel_accuracy

    print(f"{config['model']} on {config['data']} test set ({images} images): pixel accuracy "
          f"{pixel_accuracy(cm):.4f}, mean IoU {mean_iou(cm):.4f}, loss {loss:.4f}")
    names = config.get("classes") or [str(k) for k in range(len(cm))]
    width = max(len(name) for name in names)
    for name, iou, accuracy, pixels in zip(names, per_class_iou(cm), per_class_accuracy(cm),
                                           cm.sum(axis=1)):
        print(f"  {name:{width}s}  IoU {iou:.4f}  accuracy {accuracy:.4f}  ({pixels} pixels)")


# ---- predict ----------------------------------------------------------------------------------


def class_palette(num_classes):
    """uint8 (num_classes, 3): PASCAL VOC's colour map (0 black, 1 dark red, 2 green, 3 olive,
    4 navy, ...): the bits of the class index spread over the high bits of R, G and B."""
    palette = np.zeros((num_classes, 3), np.uint8)
    for k in range(num_classes):
        index, colour = k, [0, 0, 0]
        for bit in range(7, -1, -1):  # 8 bits of colour, 3 bits of the index per step
            for channel in range(3):
                colour[channel] |= ((index >> channel) & 1) << bit
            index >>= 3
        palette[k] = colour
    return palette


def overlay(image, mask, palette, alpha=OVERLAY_ALPHA):
    """uint8 (H, W, 3): the RGB image (float [0, 1], (H, W, 3)) blended with each pixel's
    class colour, ``alpha`` of the colour."""
    blended = (1 - alpha) * image * 255 + alpha * palette[mask].astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def output_paths(paths, out):
    """(mask path, overlay path) per image in folder ``out``: STEM_mask.png, STEM_overlay.png.
    Two images with one stem would overwrite each other: refused before anything runs."""
    seen = {}
    for path in map(Path, paths):
        if path.stem in seen and seen[path.stem] != path:
            raise CLIError(f"{seen[path.stem]} and {path} share the name {path.stem!r}: their "
                           f"masks would overwrite each other in {out}; predict them separately "
                           f"with different --out folders")
        seen[path.stem] = path
    return [(Path(out) / f"{Path(p).stem}_mask.png", Path(out) / f"{Path(p).stem}_overlay.png")
            for p in paths]


def write_predictions(paths, logits, targets):
    """Write each image's predicted mask (grey PNG of class indices) and overlay at the
    image's own size (the mask resized by nearest neighbour); print one line per image.

    logits (N, K, h, w) at the run's input size; ``targets`` from output_paths."""
    from juanji.viz.images import read_image, write_image

    palette = class_palette(logits.shape[1])
    masks = logits.argmax(axis=1).astype(np.uint8)  # (N, h, w)
    for path, mask, (mask_path, overlay_path) in zip(paths, masks, targets):
        image = read_image(path, mode="RGB")  # (H, W, 3) in [0, 1]
        if mask.shape != image.shape[:2]:
            from PIL import Image

            resized = Image.fromarray(mask).resize(image.shape[1::-1], Image.NEAREST)
            mask = np.asarray(resized, dtype=np.uint8)  # (H, W)
        write_image(mask_path, mask)
        write_image(overlay_path, overlay(image, mask, palette))
        print(f"{path}: mask {mask_path}, overlay {overlay_path}")
