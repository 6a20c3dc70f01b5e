"""`juanji train`, `juanji eval` and `juanji models`."""

import json
import time
from pathlib import Path

from juanji.cli import CLIError

DATASETS = {
    # name -> (dataset class name in juanji.data, per-channel mean, std, classes)
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,)),
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def register(subcommands):
    train = subcommands.add_parser(
        "train", help="train a model on a dataset",
        description="Train a CNN and write a run folder. The defaults (LeNet-5, Fashion-MNIST, "
                    "3 epochs, Adam lr 2e-3 with cosine decay per epoch, batch 64) reach about "
                    "89% test accuracy.")
    train.add_argument("--model", default="lenet5", help="a name from `juanji models`")
    train.add_argument("--data", default="fashion-mnist", choices=sorted(DATASETS))
    train.add_argument("--data-root", default=None, help="folder holding the dataset files")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--optimizer", default="adam",
                       help="sgd, adam, adamw, rmsprop, adagrad, adadelta, adamax, nadam")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--momentum", type=float, default=0.0)
    train.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty")
    train.add_argument("--l1", type=float, default=0.0, help="L1 strength (proximal step)")
    train.add_argument("--scheduler", default="cosine",
                       help="none, step, multistep, exponential, cosine, cosine-restarts, "
                            "plateau, cyclic, onecycle, linear")
    train.add_argument("--clip-grad", type=float, default=None, help="max gradient L2 norm")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=int, default=None,
                       help="use only the first N training and N//6 test images (quick runs)")
    train.add_argument("--out", default="runs", help="parent folder of the run folder")
    train.add_argument("--name", default=None, help="run folder name (default: model-time)")
    train.add_argument("--resume", default=None, help="continue the run in this folder")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)

    evaluate = subcommands.add_parser("eval", help="re-evaluate a saved run on the test set")
    evaluate.add_argument("--checkpoint", required=True, help="a run folder")
    evaluate.add_argument("--data-root", default=None)
    evaluate.add_argument("--batch-size", type=int, default=500)
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
    listing.set_defaults(run=run_models)


def load_data(name, root=None, train=True, limit=None):
    """The dataset with its standard normalisation; `limit` keeps the first N samples."""
    from juanji import data
    from juanji.data.transforms import Compose, Normalize, ToFloat

    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    class_name, mean, std = DATASETS[name]
    dataset = getattr(data, class_name)(root=root, train=train,
                                        transform=Compose([ToFloat(), Normalize(mean, std)]))
    if limit is not None:
        dataset = data.ArrayDataset(dataset.images[:limit], dataset.labels[:limit],
                                    transform=dataset.transform)
    return dataset


def _check_positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise CLIError(f"--{name.replace('_', '-')} must be > 0; got {value}")


def run_train(args):
    import juanji
    from juanji import optim
    from juanji.data import DataLoader
    from juanji.io.checkpoint import load_optimizer_state, load_run
    from juanji.models import create_model
    from juanji.train import Trainer

    _check_positive(args, "epochs", "batch_size", "limit", "clip_grad")
    juanji.manual_seed(args.seed)
    if args.resume:
        model, info = load_run(args.resume)
        config = info["config"]
        run_dir = Path(args.resume)
    else:
        config = {k: getattr(args, k) for k in ("model", "data", "batch_size", "optimizer", "lr",
                                                "momentum", "weight_decay", "l1", "scheduler",
                                                "clip_grad", "seed", "limit")}
        train_set = load_data(args.data, args.data_root, True, args.limit)
        sample = train_set.images[:1]
        channels = 1 if sample.ndim == 3 else sample.shape[1]
        config["model_args"] = {"num_classes": 10, "in_channels": channels}
        model = create_model(args.model, **config["model_args"])
        name = args.name or f"{args.model}-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = Path(args.out) / name
    train_set = load_data(config["data"], args.data_root, True, config["limit"])
    test_limit = None if config["limit"] is None else max(config["limit"] // 6, 1)
    test_set = load_data(config["data"], args.data_root, False, test_limit)
    train_loader = DataLoader(train_set, config["batch_size"], shuffle=True, seed=config["seed"])
    test_loader = DataLoader(test_set, 1000)
    optimizer = optim.build_optimizer(config["optimizer"], model.parameters(), lr=config["lr"],
                                      momentum=config["momentum"],
                                      weight_decay=config["weight_decay"])
    scheduler = optim.build_scheduler(config["scheduler"], optimizer, len(train_loader),
                                      args.epochs)
    regularizer = optim.L1Proximal(optimizer, config["l1"]) if config["l1"] else None
    trainer = Trainer(model, optimizer, train_loader, test_loader, scheduler=scheduler,
                      run_dir=run_dir, config=config, clip_grad=config["clip_grad"],
                      regularizer=regularizer, progress=not args.no_progress,
                      callbacks=[_print_epoch])
    if args.resume:
        load_optimizer_state(run_dir, optimizer, info)
        if scheduler is not None and "scheduler" in info:
            scheduler.load_state_dict(info["scheduler"])
        trainer.epoch, trainer.history = info["epoch"], info["history"]
    print(f"training {config['model']} on {config['data']} "
          f"({len(train_set)} train / {len(test_set)} test images) -> {run_dir}")
    try:
        trainer.fit(args.epochs)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the last finished epoch ({trainer.epoch}) is saved in {run_dir}")
        return 130
    accuracy = trainer.history[-1].get("test_acc", float("nan"))
    print(f"done: test accuracy {accuracy:.4f}; run folder {run_dir} "
          f"(model.safetensors, run.json, history.csv, curves.png, filters.png)")
    return 0


def _print_epoch(trainer, record):
    print(f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
          f"acc {record['train_acc']:.4f} | test loss {record.get('test_loss', float('nan')):.4f} "
          f"acc {record.get('test_acc', float('nan')):.4f} | {record['images_per_s']:.0f} img/s",
          flush=True)


def run_eval(args):
    import juanji
    from juanji.data import DataLoader
    from juanji.io.checkpoint import load_run
    from juanji.nn import functional as F

    _check_positive(args, "batch_size")
    model, info = load_run(args.checkpoint)
    config = info["config"]
    test_set = load_data(config["data"], args.data_root, False)
    model.eval()
    total_loss, correct = 0.0, 0
    with juanji.no_grad():
        for images, labels in DataLoader(test_set, args.batch_size):
            logits = model(juanji.Tensor(images))
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.data.argmax(axis=1) == labels).sum())
    n = len(test_set)
    print(f"{config['model']} on {config['data']} test set ({n} images): "
          f"accuracy {correct / n:.4f}, loss {total_loss / n:.4f}")
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

    from juanji.models import DEFAULT_INPUTS, MODELS
    from juanji.nn import init

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
