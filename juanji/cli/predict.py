"""`juanji predict`: a trained classifier's top-k classes for image files, or a segmentation
run's predicted masks and overlays (juanji.cli.segmentation)."""

from pathlib import Path

import numpy as np

from juanji.cli import CLIError
from juanji.cli.train import DATASETS, POSITIVE_INT

# how each named dataset's images look: Pillow mode and (H, W)
DATASET_INPUTS = {"fashion-mnist": ("L", (28, 28)), "mnist": ("L", (28, 28)),
                  "cifar10": ("RGB", (32, 32))}


def register(subcommands):
    predict = subcommands.add_parser(
        "predict", help="classify or segment image files with a trained run",
        description="Print each image's most likely classes with their probabilities; for a "
                    "segmentation run, write each image's predicted mask (a grey PNG of class "
                    "indices) and an overlay (the image blended with a colour per class) at "
                    "the image's size, and say where. Every image is converted as the run's "
                    "training data were: grey or colour, resized to the training size, "
                    "normalised with the training statistics.")
    predict.add_argument("--checkpoint", required=True, help="a run folder")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--topk", type=POSITIVE_INT, default=3,
                         help="how many classes to print per image (default 3)")
    predict.add_argument("--out", default=None, metavar="FOLDER",
                         help="segmentation: where the masks and overlays go (default: the run "
                              "folder's predictions/)")
    predict.set_defaults(run=run_predict)


def input_spec(config):
    """(mode, (H, W), mean, std, class names) of the images a run was trained on."""
    from juanji import data

    name = config["data"]
    if name in DATASETS:
        class_name, mean, std = DATASETS[name]
        mode, size = DATASET_INPUTS[name]
        classes = config.get("classes") or list(getattr(data, class_name).class_names)
        return mode, size, mean, std, classes
    missing = [k for k in ("mode", "image_size", "mean", "std", "classes") if k not in config]
    if missing:
        raise CLIError(f"the run's config lacks {', '.join(missing)}: it cannot say how its "
                       f"training images {name} were converted")
    return (config["mode"], tuple(config["image_size"]), config["mean"], config["std"],
            config["classes"])


def load_images(paths, mode, size, mean, std):
    """float32 (N, C, H, W): each file decoded in `mode`, resized to `size`, normalised."""
    from juanji.data.folders import decode
    from juanji.data.transforms import Compose, Normalize, ToFloat

    images = []
    for path in paths:
        try:
            images.append(decode(path, mode, size))  # (H, W, C) uint8
        except (ValueError, OSError) as exc:
            what = "grey" if mode == "L" else "colour"
            raise CLIError(f"cannot convert {path} into the run's input ({what} "
                           f"{size[0]}x{size[1]}): {exc}") from None
    return Compose([ToFloat(), Normalize(mean, std)]).batch(np.stack(images))


def softmax(logits):
    """Row-wise softmax of (N, K) logits, shifted by the row maximum."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def run_predict(args):
    import juanji
    from juanji.io.checkpoint import check_finite_weights, load_run

    model, info = load_run(args.checkpoint)
    check_finite_weights(model, Path(info["checkpoint_dir"]) / "model.safetensors")
    segmentation = info["config"].get("task") == "segmentation"
    if args.out is not None and not segmentation:
        raise CLIError(f"--out applies to segmentation runs; {args.checkpoint} is a classifier, "
                       f"whose predictions are printed", usage=True)
    if segmentation:
        from juanji.cli.segmentation import output_paths, write_predictions

        targets = output_paths(args.images, args.out or Path(args.checkpoint) / "predictions")
    mode, size, mean, std, classes = input_spec(info["config"])
    batch = load_images(args.images, mode, size, mean, std)  # (N, C, H, W)
    model.eval()
    with juanji.no_grad():
        logits = model(juanji.Tensor(batch)).data
    if segmentation:
        write_predictions(args.images, logits, targets)  # logits (N, K, H, W)
        return 0
    if logits.ndim != 2:
        raise CLIError(f"predict handles classifiers; {info['config']['model']} gives outputs "
                       f"of shape {tuple(logits.shape[1:])} per image")
    probabilities = softmax(logits.astype(np.float64))  # (N, K)
    names = classes if len(classes) == logits.shape[1] else [str(i) for i in
                                                              range(logits.shape[1])]
    k = min(args.topk, logits.shape[1])
    for path, row in zip(args.images, probabilities):
        top = np.argsort(-row, kind="stable")[:k]
        print(f"{path}: " + ", ".join(f"{names[i]} {row[i]:.3f}" for i in top))
    return 0
