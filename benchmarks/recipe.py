"""The fashion_cnn recipe (`juanji train --model fashion_cnn`) trained in juanji and PyTorch.

    python -m benchmarks.recipe [--epochs N] [--limit N] [--seed S] [--quick]

Both frameworks train the same network (parameter counts asserted equal) from the same initial
weights (torch's, copied into juanji) with the recipe of juanji.models.RECIPES["fashion_cnn"]:
its optimizer, one-cycle schedule stepped per batch, batch size, epochs and augmentation. They
see the same batches: each epoch's shuffled, augmented, normalised batches are made once by
juanji's DataLoader and transforms, as `juanji train` makes them, and fed to both.

Timed per epoch: the data preparation (shared), each framework's training (forward,
cross-entropy, backward, optimizer and schedule step over every batch) and its evaluation on
the test set (the full one; with --limit N the first N // 6 images, as `juanji train --limit`).
A framework's epoch wall time is preparation + its training + its evaluation; each epoch's
line ends with the ratio of the training times, juanji / torch. The epochs alternate juanji,
torch, so drifts in the machine's load hit both alike; 2 threads each (benchmarks/__init__.py).
The full recipe (10 epochs of 60000 images; `juanji train` alone took about 8 minutes) runs
for well over 10 minutes; --quick trains 1 epoch on 5000 images. `juanji train` adds a progress
bar, checkpoints and pictures to what is timed here.
"""

import argparse
import time

from benchmarks.common import IDLE_S, copy_weights, report, setup_torch, summarize
from juanji.models import recipe

QUICK = {"epochs": 1, "limit": 5000}
TEST_BATCH = 1000  # as `juanji train` evaluates


def torch_fashion_cnn(torch, num_classes=10, in_channels=1, widths=(32, 64), hidden=256,
                      dropout=0.1, size=28):
    """fashion_cnn's default layout (one conv per block) in plain torch.nn, same key names."""
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                             nn.Dropout(dropout))

    class FashionCNN(nn.Module):
        def __init__(self):
            super().__init__()
            channels = [in_channels, *widths]
            self.features = nn.Sequential(*[block(channels[i], channels[i + 1])
                                            for i in range(len(widths))])
            flat = widths[-1] * (size // 2 ** len(widths)) ** 2
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(flat, hidden, bias=False), nn.BatchNorm1d(hidden),
                nn.ReLU(inplace=True), nn.Dropout(2 * dropout), nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.classifier(self.flatten(self.features(x)))

    return FashionCNN()


def check_recipe(settings):
    """The torch side mirrors Adam with a one-cycle schedule; anything else would be unfair."""
    if (settings["optimizer"], settings["scheduler"]) != ("adam", "onecycle"):
        raise SystemExit(f"benchmarks.recipe mirrors adam + onecycle in torch; the recipe now "
                         f"has optimizer {settings['optimizer']!r} and scheduler "
                         f"{settings['scheduler']!r}: extend torch_training()")


def juanji_training(model, settings, steps_per_epoch, epochs):
    """(train_epoch(batches) -> (loss, acc), evaluate(batches) -> acc, lr()) for juanji,
    with the optimizer and schedule built as `juanji train` builds them."""
    import juanji
    from juanji import optim
    from juanji.nn import functional as F

    optimizer = optim.build_optimizer(settings["optimizer"], model.parameters(),
                                      lr=settings["lr"], weight_decay=settings["weight_decay"])
    scheduler = optim.build_scheduler(settings["scheduler"], optimizer, steps_per_epoch, epochs)

    def train_epoch(batches):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for images, labels in batches:
            logits = model(juanji.Tensor(images))
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.data.argmax(axis=1) == labels).sum())
            seen += len(labels)
        return loss_sum / seen, correct / seen

    def evaluate(batches):
        model.eval()
        correct = 0
        with juanji.no_grad():
            for images, labels in batches:
                correct += int((model(juanji.Tensor(images)).data.argmax(axis=1) == labels).sum())
        return correct / sum(len(labels) for _, labels in batches)

    return train_epoch, evaluate, lambda: optimizer.param_groups[0]["lr"]


def torch_training(torch, model, settings, steps_per_epoch, epochs):
    """The same three callables for torch: Adam and OneCycleLR with torch's defaults, which
    are juanji's (div_factor 25, final_div_factor 1e4, pct_start 0.3, cosine, beta1 cycled
    between 0.85 and 0.95)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"],
                                 weight_decay=settings["weight_decay"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings["lr"], total_steps=steps_per_epoch * epochs)
    cross_entropy = torch.nn.functional.cross_entropy

    def train_epoch(batches):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for images, labels in batches:
            x, y = torch.from_numpy(images), torch.from_numpy(labels)
            logits = model(x)
            loss = cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(labels)
        return loss_sum / seen, correct / seen

    def evaluate(batches):
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in batches:
                predicted = model(torch.from_numpy(images)).argmax(dim=1).numpy()
                correct += int((predicted == labels).sum())
        return correct / sum(len(labels) for _, labels in batches)

    return train_epoch, evaluate, lambda: optimizer.param_groups[0]["lr"]


def timed(fn, *args):
    """(seconds, fn(*args)), after IDLE_S of untimed idle (see benchmarks.common.IDLE_S)."""
    time.sleep(IDLE_S)
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def run(epochs=None, limit=None, seed=0):
    import juanji
    from juanji.cli.train import load_data
    from juanji.data import DataLoader
    from juanji.models import create_model

    torch = setup_torch()
    settings = recipe("fashion_cnn")
    check_recipe(settings)
    epochs = epochs or settings["epochs"]
    juanji.manual_seed(seed)
    torch.manual_seed(seed)
    train_set = load_data("fashion-mnist", train=True, limit=limit, augment=settings["augment"])
    test_set = load_data("fashion-mnist", train=False,
                         limit=None if limit is None else max(limit // 6, 1))
    loader = DataLoader(train_set, settings["batch_size"], shuffle=True, seed=seed)
    test_batches = list(DataLoader(test_set, TEST_BATCH))

    model, torch_model = create_model("fashion_cnn"), torch_fashion_cnn(torch)
    params = sum(p.data.size for p in model.parameters())
    torch_params = sum(p.numel() for p in torch_model.parameters())
    assert params == torch_params, f"juanji has {params} parameters, torch {torch_params}"
    copy_weights(model, torch_model)
    sides = {"juanji": juanji_training(model, settings, len(loader), epochs),
             "torch": torch_training(torch, torch_model, settings, len(loader), epochs)}

    print(f"fashion_cnn recipe ({params:,d} parameters): {epochs} epoch(s) of {len(train_set)} "
          f"images, batch {settings['batch_size']}, {settings['optimizer']} lr {settings['lr']} "
          f"{settings['scheduler']}, augment {settings['augment']}; test {len(test_set)} images")
    print(f"{'epoch':>5s} {'prep s':>7s} | {'juanji train':>12s} {'eval':>5s} {'epoch':>6s} "
          f"{'acc':>6s} | {'torch train':>11s} {'eval':>5s} {'epoch':>6s} {'acc':>6s} | "
          f"{'ratio':>5s}")
    times = {"prep": [], "juanji": [], "torch": [], "juanji eval": [], "torch eval": []}
    accuracy = {}
    for epoch in range(1, epochs + 1):
        prep, batches = timed(list, loader)
        times["prep"].append(prep)
        for name, (train_epoch, evaluate, _) in sides.items():
            seconds, _ = timed(train_epoch, batches)
            eval_seconds, accuracy[name] = timed(evaluate, test_batches)
            times[name].append(seconds)
            times[f"{name} eval"].append(eval_seconds)
        lrs = [lr() for _, _, lr in sides.values()]
        assert abs(lrs[0] - lrs[1]) <= 1e-6 * settings["lr"], f"the schedules differ: {lrs}"
        wall = {name: prep + times[name][-1] + times[f"{name} eval"][-1] for name in sides}
        print(f"{epoch:5d} {prep:7.2f} | {times['juanji'][-1]:12.1f} "
              f"{times['juanji eval'][-1]:5.1f} {wall['juanji']:6.1f} {accuracy['juanji']:6.4f} "
              f"| {times['torch'][-1]:11.1f} {times['torch eval'][-1]:5.1f} "
              f"{wall['torch']:6.1f} {accuracy['torch']:6.4f} | "
              f"{times['juanji'][-1] / times['torch'][-1]:5.2f}", flush=True)

    walls = {name: [p + t + e for p, t, e in zip(times["prep"], times[name],
                                                   times[f"{name} eval"])]
             for name in sides}
    rows = [
        summarize("training per epoch (fwd/bwd/step)", times["juanji"], times["torch"]),
        summarize("evaluation per epoch", times["juanji eval"], times["torch eval"]),
        summarize("epoch wall (prep + train + eval)", walls["juanji"], walls["torch"]),
        summarize(f"total over {epochs} epochs", [sum(walls["juanji"])], [sum(walls["torch"])]),
    ]
    report(rows, "fashion_cnn recipe, median ms over epochs (min-max), ratio = juanji / torch")
    print(f"data preparation (shared, juanji's DataLoader and transforms): "
          f"{sum(times['prep']):.2f} s in all")
    print(f"test accuracy after {epochs} epochs: juanji {accuracy['juanji']:.4f}, "
          f"torch {accuracy['torch']:.4f}")
    return rows, accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the recipe's (--quick: 1)")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N images (default all; --quick: 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['epochs']} epoch on {QUICK['limit']} images")
    args = parser.parse_args()
    for name, value in (("epochs", args.epochs), ("limit", args.limit)):
        if value is not None and value < 1:
            parser.error(f"--{name} must be a positive integer; got {value}")
    if args.quick:
        args.epochs = args.epochs or QUICK["epochs"]
        args.limit = args.limit or QUICK["limit"]
    run(args.epochs, args.limit, args.seed)
