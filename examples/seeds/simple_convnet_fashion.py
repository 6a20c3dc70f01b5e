"""Seeds, 7.6.1 (第一层权重的可视化): SimpleConvNet's 30 first-layer filters before and after
a short training on Fashion-MNIST.

conv 30@5x5 -> ReLU -> max-pool 2 -> affine 100 -> ReLU -> affine 10 on 1x28x28 images. The
randomly initialised filters look like noise; after training, many become oriented edge and
blob detectors (bright/dark halves), which is what the seeds' figure shows.

    python examples/seeds/simple_convnet_fashion.py [--steps 300] [--batch-size 64]
           [--limit 20000] [--data-root DIR] [--out DIR]
"""

import argparse
from pathlib import Path

import numpy as np

import juanji
from juanji import optim
from juanji.data import ArrayDataset, DataLoader, FashionMNIST
from juanji.data.transforms import Compose, Normalize, ToFloat
from juanji.models import MODELS
from juanji.nn import functional as F
from juanji.viz.filters import save_filter_comparison


def evaluate(model, images, labels):
    """(loss, accuracy) on one fixed batch, in eval mode without gradients."""
    model.eval()
    with juanji.no_grad():
        logits = model(juanji.tensor(images))
        loss = F.cross_entropy(logits, juanji.tensor(labels)).item()
    model.train()
    return loss, float((logits.numpy().argmax(axis=1) == labels).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training batches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=20000, help="training images used")
    parser.add_argument("--test", type=int, default=1000, help="test images evaluated")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="seed_outputs")
    args = parser.parse_args(argv)

    juanji.manual_seed(args.seed)
    transform = Compose([ToFloat(), Normalize((0.2860,), (0.3530,))])
    train = FashionMNIST(args.data_root, train=True, transform=transform)
    test = FashionMNIST(args.data_root, train=False, transform=transform)
    train = ArrayDataset(train.images[:args.limit], train.labels[:args.limit], transform)
    test_x, test_y = next(iter(DataLoader(ArrayDataset(test.images[:args.test],
                                                       test.labels[:args.test], transform),
                                          batch_size=args.test)))

    model = MODELS["simple_convnet"]()
    # the seeds' initialisation: every weight ~ N(0, 0.01^2) ("weight_init_std=0.01"), biases
    # 0; with weights this small, what the filters show after training is what they learned
    rng = np.random.default_rng(args.seed)
    for name, param in model.named_parameters():
        param.data[...] = 0.0 if name.endswith("bias") else \
            rng.normal(0.0, 0.01, param.shape).astype(np.float32)
    before = model.conv1.weight.data.copy()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loss0, acc0 = evaluate(model, test_x, test_y)
    print(f"before training: test loss {loss0:.3f}, accuracy {acc0:.3f}")

    step = 0
    while step < args.steps:
        for images, labels in DataLoader(train, args.batch_size, shuffle=True,
                                         seed=args.seed + step):
            loss = F.cross_entropy(model(juanji.tensor(images)), juanji.tensor(labels))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 50 == 0 or step == args.steps:
                print(f"step {step}: batch loss {loss.item():.3f}", flush=True)
            if step == args.steps:
                break

    loss1, acc1 = evaluate(model, test_x, test_y)
    print(f"after {step} steps: test loss {loss1:.3f}, accuracy {acc1:.3f}")
    after = model.conv1.weight.data
    change = float(np.abs(after - before).mean() / np.abs(before).mean())
    print(f"filters changed by {change:.0%} of their initial size on average")

    path = Path(args.out) / "simple_convnet_filters.png"
    save_filter_comparison([before, after], ["before training", f"after {step} steps"], path)
    print(f"wrote {path}")
    return loss0, loss1, acc1


if __name__ == "__main__":
    main()
