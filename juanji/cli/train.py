"""`juanji train`, `juanji eval` and `juanji models`."""

import argparse
import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

from juanji.cli import CLIError
from juanji.cli.data import parse_fraction, parse_image_size, parse_model_arg

DATASETS = {
    # name -> (dataset class name in juanji.data, per-channel mean, std, classes)
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,)),
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


# What a new run uses for each flag not given. Resuming, a flag not given keeps the saved value.
TRAIN_DEFAULTS = {"model": "lenet5", "data": "fashion-mnist", "epochs": 3, "batch_size": 64,
                  "optimizer": "adam", "lr": 2e-3, "momentum": 0.0, "weight_decay": 0.0,
                  "l1": 0.0, "scheduler": "cosine", "clip_grad": None, "seed": 0, "limit": None,
                  "augment": "none", "image_size": None, "val_split": 0.1,
                  "task": "classification", "num_classes": None, "model_arg": None}
# A new run takes each flag not given from its model's recipe (juanji.models.RECIPES) first.
# Resuming: these would make it another run, so a different value is refused ...
FIXED_ON_RESUME = ("model", "data", "batch_size", "optimizer", "momentum", "weight_decay", "l1",
                   "seed", "limit", "augment", "image_size", "val_split", "task", "num_classes",
                   "model_arg")
# ... and these are applied (and announced); a schedule change rebuilds the schedule.
CHANGEABLE_ON_RESUME = ("epochs", "lr", "scheduler", "clip_grad")


def _number(kind, low, low_open):
    """An argparse type: a finite number (int or float) >= low (> low if low_open)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>' if low_open else '>='} {low}; got {text}")
        return value
    return parse


POSITIVE_INT, POSITIVE, NON_NEGATIVE = _number(int, 0, True), _number(float, 0, True), \
    _number(float, 0, False)


def register(subcommands):
    train = subcommands.add_parser(
        "train", help="train a model on a dataset",
        description="Train a CNN and write a run folder. The defaults (LeNet-5, Fashion-MNIST, "
                    "3 epochs, Adam lr 2e-3 with cosine decay per epoch, batch 64) reach about "
                    "89%% test accuracy. With --resume, flags that define the run (model, data, "
                    "task, batch size, optimizer and its settings, seed, limit) must match the "
                    "saved run; --epochs, --lr, --scheduler and --clip-grad may change, and a "
                    "changed schedule is rebuilt over the new total from the current step.")
    d = TRAIN_DEFAULTS
    train.add_argument("--model", help=f"a name from `juanji models` (default {d['model']}); "
                                       "flags not given come from its recipe (`juanji models "
                                       "--recipes`), then from the defaults")
    train.add_argument("--data", metavar="NAME|FOLDER",
                       help=f"{', '.join(sorted(DATASETS))}, or a folder with one sub-folder of "
                            "images per class (or train/ and test/ or val/ holding such "
                            f"sub-folders) (default {d['data']})")
    train.add_argument("--task", choices=("classification", "segmentation"),
                       help="segmentation: --data is a folder of images/ with class-index "
                            "masks/ (or train/ and test/ holding them), --model one of unet, "
                            "fcn8s, fcn16s, fcn32s; scored by pixel accuracy and mean IoU "
                            f"(default {d['task']})")
    train.add_argument("--num-classes", type=POSITIVE_INT,
                       help="segmentation: the number of classes (default: largest mask "
                            "value + 1); a larger mask value is an error")
    train.add_argument("--model-arg", type=parse_model_arg, action="append", metavar="NAME=VALUE",
                       help="an argument of the model's constructor, e.g. width=16 for unet "
                            "(repeatable; classes and channels come from the data)")
    train.add_argument("--image-size", type=parse_image_size, metavar="HxW",
                       help="with a folder: resize every image to H x W (needed when sizes "
                            "differ)")
    train.add_argument("--val-split", type=parse_fraction,
                       help="with a folder without train/ and test/: the fraction held out for "
                            f"testing, drawn with --seed (default {d['val_split']})")
    train.add_argument("--augment", metavar="crop,flip,...|none",
                       help="training-set augmentations, comma-separated, from: "
                            "crop, flip, vflip, rotate, resized-crop, jitter, erase "
                            "(default: the model's recipe, else none)")
    train.add_argument("--data-root", default=None,
                       help="folder holding the dataset files (the only place searched)")
    train.add_argument("--download", action="store_true",
                       help="download MNIST/Fashion-MNIST into ~/.cache/juanji when not found")
    train.add_argument("--epochs", type=POSITIVE_INT,
                       help=f"total epochs (default {d['epochs']}; resuming: the saved total)")
    train.add_argument("--batch-size", type=POSITIVE_INT, help=f"default {d['batch_size']}")
    train.add_argument("--optimizer", help="sgd, adam, adamw, rmsprop, adagrad, adadelta, "
                                           f"adamax, nadam (default {d['optimizer']})")
    train.add_argument("--lr", type=POSITIVE, help=f"learning rate (default {d['lr']})")
    train.add_argument("--momentum", type=NON_NEGATIVE, help="sgd and rmsprop (default 0)")
    train.add_argument("--weight-decay", type=NON_NEGATIVE, help="L2 penalty (default 0)")
    train.add_argument("--l1", type=NON_NEGATIVE, help="L1 strength, proximal step (default 0)")
    train.add_argument("--scheduler",
                       help="none, step, multistep, exponential, cosine, cosine-restarts, "
                            f"plateau, cyclic, onecycle, linear (default {d['scheduler']})")
    train.add_argument("--clip-grad", type=POSITIVE, help="max gradient L2 norm")
    train.add_argument("--seed", type=_number(int, 0, False), help="default 0")
    train.add_argument("--limit", type=POSITIVE_INT,
                       help="use only the first N training and N//6 test images (quick runs)")
    train.add_argument("--save-every", type=POSITIVE_INT, default=None,
                       help="also commit a checkpoint every N steps inside an epoch")
    train.add_argument("--out", default="runs", help="parent folder of the run folder")
    train.add_argument("--name", default=None, help="run folder name (default: model-time)")
    train.add_argument("--resume", default=None, metavar="RUN_FOLDER",
                       help="continue the run in this folder")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--workers", type=POSITIVE_INT, default=None,
                       help="run as N data-parallel MPI ranks (relaunches under mpiexec; "
                            "needs pip install 'juanji[distributed]')")
    train.add_argument("--sync-bn", action="store_true",
                       help="over MPI: batch-norm statistics over the global batch")
    train.add_argument("--dist-timeout", type=POSITIVE, default=300.0,
                       help="over MPI: seconds a collective may wait for a stalled rank")
    train.set_defaults(run=run_train)

    evaluate = subcommands.add_parser("eval", help="re-evaluate a saved run on the test set")
    evaluate.add_argument("--checkpoint", required=True, help="a run folder")
    evaluate.add_argument("--data-root", default=None)
    evaluate.add_argument("--download", action="store_true")
    evaluate.add_argument("--batch-size", type=POSITIVE_INT, default=500)
    evaluate.set_defaults(run=run_eval)

    plot = subcommands.add_parser("lr-plot", help="draw a learning-rate schedule as a PNG")
    plot.add_argument("--scheduler", default="cyclic", help="a --scheduler name of `train`")
    plot.add_argument("--optimizer", default="sgd")
    plot.add_argument("--lr", type=float, default=0.1)
    plot.add_argument("--momentum", type=float, default=0.9)
    plot.add_argument("--epochs", type=int, default=10)
    plot.add_argument("--steps-per-epoch", type=int, default=100)
    plot.add_argument("--out", default="lr-schedule.png")
    plot.set_defaults(run=run_lr_plot)

    listing = subcommands.add_parser("models", help="list the model zoo")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--recipes", action="store_true",
                         help="list the models' training recipes (what `juanji train --model "
                              "NAME` uses for flags not given)")
    listing.set_defaults(run=run_models)


def load_data(name, root=None, train=True, limit=None, download=False, augment=None):
    """The dataset with its standard normalisation; `limit` keeps the first N samples;
    `augment` (a build_augmentation spec) is applied between ToFloat and Normalize.

    Nothing is downloaded unless `download` (the --download flag) is set."""
    from juanji import data
    from juanji.cli.data import build_transform

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    class_name, mean, std = DATASETS[name]
    kwargs = {"download": download} if class_name != "CIFAR10" else {}
    dataset = getattr(data, class_name)(root=root, train=train, **kwargs)
    classes = dataset.classes
    if limit is not None:
        dataset = data.ArrayDataset(dataset.images[:limit], dataset.labels[:limit])
        dataset.classes = classes
    dataset.transform = build_transform(dataset.images.shape[-2:], mean, std, augment)
    return dataset


def load_datasets(config, args):
    """(train set, test set) of a run: a named dataset or a folder (juanji.cli.data).

    The training set is augmented as config["augment"] says, the test set never. A new run's
    config (one without "model_args") gets what the data decide: "model_args" (classes,
    channels, input size) and "classes" (for a folder also "mode", "image_size", "mean", "std").
    """
    from juanji.cli.data import folder_datasets, set_model_args
    from juanji.cli.segmentation import segmentation_datasets

    if config.get("task") == "segmentation":
        return segmentation_datasets(config)
    if config["data"] not in DATASETS:
        return folder_datasets(config)
    download = getattr(args, "download", False)
    train_set = load_data(config["data"], args.data_root, True, config["limit"], download,
                          config.get("augment"))
    test_set = load_data(config["data"], args.data_root, False, _test_limit(config), download)
    if "model_args" not in config:
        config["classes"] = list(train_set.classes)
        set_model_args(config, train_set.images)
    return train_set, test_set


def _check_positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise CLIError(f"--{name.replace('_', '-')} must be > 0; got {value}", usage=True)


def _flag(name):
    return "--" + name.replace("_", "-")


def _new_run_config(args):
    """A new run's settings: each flag as given, else the model's recipe, else TRAIN_DEFAULTS.
    The data fill in the rest (load_datasets)."""
    from juanji.models import recipe

    model = args.model or TRAIN_DEFAULTS["model"]
    preset = recipe(model)
    config = {k: (getattr(args, k) if getattr(args, k) is not None else preset.get(k, v))
              for k, v in TRAIN_DEFAULTS.items()}
    config["model"] = model
    return config


def _normalise_data_flag(args):
    """A folder given to --data becomes its absolute path (as the run records it); the
    --model-arg pairs become one dict."""
    from juanji.cli.data import resolve_folder

    if getattr(args, "data", None) is not None and args.data not in DATASETS:
        args.data = resolve_folder(args.data)
    if getattr(args, "model_arg", None) is not None:
        args.model_arg = dict(args.model_arg)


def _resumed_config(args, saved):
    """The saved config with the changeable flags applied; refuses changes to fixed ones.

    Returns (config, {name: (old, new)} of the changes).
    """
    # a run saved before a flag existed had that flag's default
    refused = [f"{_flag(k)} {getattr(args, k)!r} (the run has {saved.get(k)!r})"
               for k in FIXED_ON_RESUME if getattr(args, k) is not None
               and getattr(args, k) != saved.get(k, TRAIN_DEFAULTS[k])]
    if refused:
        raise CLIError("cannot change on --resume: " + "; ".join(refused)
                       + ". Start a new run to change them", usage=True)
    config = dict(saved)
    changes = {}
    for k in CHANGEABLE_ON_RESUME:
        given = getattr(args, k)
        if given is not None and given != saved.get(k):
            changes[k] = (saved.get(k), given)
            config[k] = given
    if config.get("epochs") is None:
        raise CLIError(f"{args.resume} does not record how many epochs it was planned for; "
                       "give --epochs", usage=True)
    return config, changes


def _build_schedule(config, optimizer, state, steps_per_epoch, changes):
    """The scheduler, continued from the checkpoint.

    Unchanged, it is loaded as saved (an exact continuation). When --epochs, --lr or
    --scheduler changed, it is rebuilt over the new total and stepped forward to the current
    step, so its lr is what an uninterrupted run with the new settings would have now (a cosine
    or one-cycle schedule extended by --epochs is never left at its final lr of 0).
    ReduceLROnPlateau follows the test loss and cannot be replayed: it keeps its saved state.
    """
    from juanji import optim
    from juanji.io.checkpoint import load_optimizer_state

    def build():
        return optim.build_scheduler(config["scheduler"], optimizer, steps_per_epoch,
                                     config["epochs"])

    if state is None:
        return build()
    scheduler = build()  # it sets the groups' lr; the saved optimizer state then replaces them
    load_optimizer_state(state["checkpoint_dir"], optimizer, state)
    if not any(k in changes for k in ("epochs", "lr", "scheduler")):
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        return scheduler
    for group in optimizer.param_groups:  # the schedule starts again from the base lr
        group["lr"] = group["initial_lr"] = config["lr"]
    if config["scheduler"] == "plateau":
        if "scheduler" not in changes and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
            for group in optimizer.param_groups:
                group["lr"] = config["lr"]
        return scheduler
    scheduler = build()
    if scheduler is not None:
        if scheduler.per_batch:
            done = state.get("trainer", {}).get("global_step", state["epoch"] * steps_per_epoch)
        else:
            done = state["epoch"]
        for _ in range(done):
            scheduler.step()
    return scheduler


def _relaunch_under_mpiexec(workers, argv):
    """`juanji train --workers N ...` runs `mpiexec -n N python -m juanji train ...`."""
    import subprocess

    from juanji import distributed

    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    try:
        command = distributed.mpiexec_command(workers, ["-m", "juanji", *kept])
    except RuntimeError as exc:
        raise CLIError(str(exc)) from None
    print(f"running {workers} ranks: {' '.join(command)}", flush=True)
    return subprocess.run(command).returncode


def run_train(args):
    from juanji import distributed

    if args.workers is not None and args.workers > 1 and not distributed.launched():
        return _relaunch_under_mpiexec(args.workers, args.argv)
    world = distributed.init()
    if world > 1:
        distributed.set_local_threads()
        distributed.set_timeout(args.dist_timeout)
    if not distributed.is_main():  # rank 0 prints; the others say only what goes wrong
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _train(args, world)
    return _train(args, world)


def _train(args, world):
    import juanji
    from juanji import distributed, optim
    from juanji.cli.segmentation import check_task
    from juanji.data import DataLoader
    from juanji.models import RECIPES, create_model
    from juanji.train import Trainer, TrainingDiverged, TrainingInterrupted

    juanji.manual_seed(args.seed if args.seed is not None else TRAIN_DEFAULTS["seed"])
    _normalise_data_flag(args)
    state, changes = None, {}
    if args.resume:
        model, state = _load_run_on_rank_0(args.resume)
        config, changes = _resumed_config(args, state["config"])
        run_dir = Path(args.resume)
    else:
        config = _new_run_config(args)
        check_task(config)
        if config["data"] in DATASETS:
            given = [_flag(k) for k in ("image_size", "val_split") if getattr(args, k) is not None]
            if given:
                raise CLIError(f"{' and '.join(given)} apply to a folder given to --data; "
                               f"{config['data']} has fixed images and a fixed test set",
                               usage=True)
        name = args.name or f"{config['model']}-{Path(config['data']).name}-" \
                            f"{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(args.out) / name
        if (run_dir / "run.json").exists() and distributed.is_main():
            raise CLIError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                           "or choose another --name")
    if state is not None and state["epoch"] >= config["epochs"] and state.get("step", 0) == 0:
        print(f"{run_dir} has finished {state['epoch']} of {config['epochs']} epochs; nothing "
              f"to train (give --epochs N with N > {state['epoch']} to continue)")
        return 0
    # a new run's data are read (and checked) before anything is written
    train_set, test_set = load_datasets(config, args)
    if state is None:
        model = create_model(config["model"], **config["model_args"])
    _check_training_fits(model, train_set.images.shape[1:], config["batch_size"])
    train_loader = DataLoader(train_set, config["batch_size"], shuffle=True, seed=config["seed"])
    test_loader = DataLoader(test_set, 1000)
    config["world_size"] = world
    if args.sync_bn:
        from juanji.nn import SyncBatchNorm

        model = SyncBatchNorm.convert_sync_batchnorm(model)
    if world > 1:
        model = distributed.DistributedDataParallel(model)  # rank 0's weights on every rank
    optimizer = optim.build_optimizer(config["optimizer"], model.parameters(), lr=config["lr"],
                                      momentum=config["momentum"],
                                      weight_decay=config["weight_decay"])
    scheduler = _build_schedule(config, optimizer, state, len(train_loader), changes)
    regularizer = optim.L1Proximal(optimizer, config["l1"]) if config["l1"] else None
    trainer = Trainer(model, optimizer, train_loader, test_loader, scheduler=scheduler,
                      run_dir=run_dir, config=config, clip_grad=config["clip_grad"],
                      regularizer=regularizer, progress=not args.no_progress,
                      callbacks=[_print_epoch], save_every=args.save_every)
    if state is not None:
        _restore_trainer(trainer, state, run_dir, changes)
    if state is None and any(getattr(args, k) is None for k in RECIPES.get(config["model"], {})):
        print(f"using {config['model']}'s recipe (flags given win): " + ", ".join(
            f"{k.replace('_', '-')} {config[k]}" for k in RECIPES[config["model"]]))
    print(f"training {config['model']} on {config['data']} "
          f"({len(train_set)} train / {len(test_set)} test images) -> {run_dir}")
    try:
        with warnings.catch_warnings():
            # overflow warnings from a diverging step: the trainer reports divergence itself
            warnings.simplefilter("ignore", RuntimeWarning)
            trainer.fit(config["epochs"])
    except TrainingInterrupted as exc:
        where = f"epoch {exc.epoch + 1} step {exc.step}" if exc.step else \
            f"the end of epoch {exc.epoch}"
        print(f"\nstopped by {_signal_name(exc.signum)} at {where}; checkpoint saved in "
              f"{run_dir}; continue with: juanji train --resume {run_dir}", file=sys.stderr)
        return 128 + exc.signum
    except TrainingDiverged as exc:
        raise CLIError(f"training diverged: {exc}; {_last_checkpoint(run_dir)}; "
                       "try a smaller --lr or --clip-grad") from None
    last = trainer.history[-1]
    score = f"test accuracy {last.get('test_acc', float('nan')):.4f}"
    if "test_miou" in last:
        score = f"test pixel accuracy {last['test_acc']:.4f}, mean IoU {last['test_miou']:.4f}"
    print(f"done: {score}; run folder {run_dir} "
          f"(run.json, checkpoints/, history.csv, curves.png, filters.png)")
    return 0


def _check_training_fits(model, sample_shape, batch_size):
    """Refuse a batch size whose training step would not fit in memory, before training.

    A step keeps every layer's output for backward and makes a gradient of each; parameters
    come with their gradients and up to two optimizer moments. The activations are measured
    by tracing one sample (juanji.analysis.trace), the rest counted.
    """
    from juanji.analysis.trace import forward_bytes, trace
    from juanji.memory import check_bytes

    channels_first = sample_shape if len(sample_shape) == 3 else (1, *sample_shape)
    per_sample = forward_bytes(trace(model, channels_first, 1))
    weights = sum(p.data.nbytes for p in model.parameters())
    check_bytes(2 * per_sample * batch_size + 4 * weights,
                f"training {type(model).__name__} at batch size {batch_size}",
                "use a smaller --batch-size")


def _load_run_on_rank_0(run_dir):
    """(model, checkpoint state) of a run folder. Over MPI only rank 0 reads the files and
    broadcasts the state and the optimizer file; the other ranks build the model from the
    config and DistributedDataParallel then copies rank 0's weights to them."""
    from juanji import distributed
    from juanji.io.checkpoint import OPTIMIZER_FILE, load_run
    from juanji.models import create_model

    if distributed.world_size() == 1:
        return load_run(run_dir)
    if distributed.is_main():
        model, state = load_run(run_dir)
        optimizer_file = Path(state["checkpoint_dir"]) / OPTIMIZER_FILE
        payload = json.dumps(state).encode("utf-8")
        optimizer_bytes = optimizer_file.read_bytes() if "optimizer" in state else b""
    else:
        model = payload = optimizer_bytes = None
    state = json.loads(distributed.broadcast_bytes(payload, what="the checkpoint's state"))
    state["optimizer_file"] = distributed.broadcast_bytes(optimizer_bytes,
                                                          what="the optimizer's state")
    if model is None:
        model = create_model(state["config"]["model"], **state["config"].get("model_args", {}))
    return model, state


def _restore_trainer(trainer, state, run_dir, changes):
    """Counters, history and random generators from the checkpoint; announce the resume."""
    trainer.history = state["history"]
    if "trainer" in state:
        trainer.load_state_dict(state["trainer"])
        exact = ""
    else:
        trainer.epoch = state["epoch"]
        exact = " (an older run folder without its shuffle state: not an exact continuation)"
    line = f"resuming {run_dir} at epoch {trainer.epoch + 1} step {trainer.step}"
    if changes:
        line += "; changed: " + ", ".join(f"{k.replace('_', '-')} {old} -> {new}"
                                          for k, (old, new) in changes.items())
    if any(k in changes for k in ("epochs", "lr", "scheduler")):
        line += "; the schedule is rebuilt over the new settings from the current step"
    print(line + exact)


def _signal_name(signum):
    import signal

    return signal.Signals(signum).name


def _last_checkpoint(run_dir):
    from juanji.io.checkpoint import CheckpointError, read_run_info

    try:
        info = read_run_info(run_dir)
    except CheckpointError:
        return "nothing was saved"
    return (f"the last good checkpoint (epoch {info['epoch']}, step {info.get('step', 0)}) is "
            f"kept in {run_dir}")


def _test_limit(config):
    """The run's test set: all of it, or N//6 images for a run trained with --limit N."""
    return None if config.get("limit") is None else max(config["limit"] // 6, 1)


def _print_epoch(trainer, record):
    acc, miou = ("pixel acc", f" mIoU {record['test_miou']:.4f}") if "test_miou" in record \
        else ("acc", "")
    print(f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
          f"{acc} {record['train_acc']:.4f} | test loss "
          f"{record.get('test_loss', float('nan')):.4f} {acc} "
          f"{record.get('test_acc', float('nan')):.4f}{miou} | {record['images_per_s']:.0f} img/s",
          flush=True)


def run_eval(args):
    import juanji
    from juanji.data import DataLoader
    from juanji.io.checkpoint import check_finite_weights, load_run
    from juanji.metrics import accuracy, confusion_matrix, per_class_accuracy
    from juanji.nn import functional as F
    from juanji.train import write_evaluation

    model, info = load_run(args.checkpoint)
    check_finite_weights(model, Path(info["checkpoint_dir"]) / "model.safetensors")
    config = dict(info["config"])
    config.setdefault("limit", None)
    config["augment"] = None  # evaluation never augments
    _, test_set = load_datasets(config, args)
    model.eval()
    total_loss, cm, seen = 0.0, 0, 0
    with juanji.no_grad():
        for images, labels in DataLoader(test_set, args.batch_size):
            logits = model(juanji.Tensor(images))
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            cm = cm + confusion_matrix(labels, logits.data.argmax(axis=1), logits.shape[1])
            seen += labels.size  # images, or pixels of masks
    n, classes = len(test_set), config.get("classes")
    segmentation = config.get("task") == "segmentation"
    if segmentation:
        from juanji.cli.segmentation import print_evaluation

        print_evaluation(config, cm, n, total_loss / seen)
    else:
        print(f"{config['model']} on {config['data']} test set ({n} images): "
              f"accuracy {accuracy(cm):.4f}, loss {total_loss / n:.4f}")
    if not segmentation and classes and len(classes) == len(cm):
        width = max(len(name) for name in classes)
        for name, value, count in zip(classes, per_class_accuracy(cm), cm.sum(axis=1)):
            print(f"  {name:{width}s}  accuracy {value:.4f}  ({count} images)")
    write_evaluation(args.checkpoint, cm, classes, iou=segmentation)
    print(f"wrote {Path(args.checkpoint) / 'confusion.png'} and "
          f"{Path(args.checkpoint) / 'per_class.csv'}")
    return 0


def run_lr_plot(args):
    """Plot a schedule: per batch for cyclic/onecycle, per epoch for the others."""
    import numpy as np

    from juanji import optim
    from juanji.nn import Parameter
    from juanji.viz.schedules import plot_lr_schedule

    _check_positive(args, "epochs", "steps_per_epoch", "lr")
    momentum = args.momentum if args.optimizer in ("sgd", "rmsprop") else 0.0
    optimizer = optim.build_optimizer(args.optimizer, [Parameter(np.zeros(1, "float32"))],
                                      lr=args.lr, momentum=momentum)
    scheduler = optim.build_scheduler(args.scheduler, optimizer, args.steps_per_epoch,
                                      args.epochs)
    if scheduler is None:
        raise CLIError("--scheduler none has nothing to plot; choose a schedule")
    if args.scheduler == "plateau":
        raise CLIError("plateau follows a validation metric; plot it with "
                       "juanji.viz.schedules.plot_lr_schedule(..., metrics=[...])")
    steps = args.epochs * args.steps_per_epoch if scheduler.per_batch else args.epochs
    unit = "batch" if scheduler.per_batch else "epoch"
    title = f"{args.scheduler} ({args.optimizer}, lr {args.lr}), one step per {unit}"
    plot_lr_schedule(scheduler, steps, args.out, title=title)
    print(f"wrote {args.out} ({steps} scheduler steps, one per {unit})")
    return 0


def run_models(args):
    import gc

    import numpy as np

    from juanji.models import DEFAULT_INPUTS, MODELS, RECIPES
    from juanji.nn import init

    if args.recipes:
        if args.json:
            print(json.dumps(RECIPES, indent=2))
            return 0
        print("training recipes: `juanji train --model NAME` uses these for flags not given")
        for name in sorted(RECIPES):
            print(f"{name:16s} " + ", ".join(f"--{k.replace('_', '-')} {v}"
                                             for k, v in RECIPES[name].items()))
        return 0
    rows = []
    for name in sorted(MODELS):
        # counting needs shapes only (each factory's own defaults); a factory that probes its
        # backbone with a forward pass computes on unfilled weights, so silence float warnings
        with init.skip_init(), np.errstate(all="ignore"):
            model = MODELS[name]()
        params = sum(p.data.size for p in model.parameters())
        del model
        gc.collect()  # some models hold reference cycles; free their weights now
        rows.append({"name": name, "parameters": params, "input": list(DEFAULT_INPUTS[name])})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':24s} {'parameters':>14s}  default input (C x H x W)")
    for row in rows:
        print(f"{row['name']:24s} {row['parameters']:>14,d}  {'x'.join(map(str, row['input']))}")
    return 0
