"""Whole-model speed against PyTorch: CIFAR-size training steps and ImageNet-size inference.

    python -m benchmarks.models [--repeats 5]

Cases (both frameworks on 2 threads, identical weights copied through state_dict, interleaved
repetitions):
- training step (forward, backward, SGD with momentum) of ResNet-20 b128 and MobileNetV2 b64
  on 3x32x32 inputs;
- inference (eval mode, no grad) of ResNet-18 at b8 and b1 on 3x224x224 inputs, and at b8
  with batch norm folded into the convs on both sides.

Memory: juanji's peak is the tracemalloc peak of one step (NumPy reports its array buffers to
tracemalloc, so this is the arrays' peak, not the process RSS); the process peak RSS
(resource.getrusage ru_maxrss) is printed once at the end, covering both frameworks.
"""

import argparse
import resource
import tracemalloc

import numpy as np

import juanji
from benchmarks.common import (
    copy_weights,
    interleaved,
    report,
    setup_torch,
    summarize,
    train_step_pair,
)
from juanji import models
from juanji.nn.utils import fold_batch_norms


def tracemalloc_peak_mb(fn):
    """Peak bytes of Python-visible allocations (NumPy arrays included) during fn(), in MB."""
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def train_pair(torch, label, model, torch_model, batch, repeats, warmup):
    """One SGD training step in both frameworks on the same random 3x32x32 batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    row = train_step_pair(torch, label, model, torch_model, x, y, repeats, warmup)
    juanji_step, _ = row.pop("steps")
    row["juanji_peak_mb"] = tracemalloc_peak_mb(juanji_step)
    return row


def infer_pair(torch, label, model, torch_model, batch, repeats, warmup, fold=False,
               channels_last=False):
    """Time eval-mode inference in both frameworks on the same random 3x224x224 batch.

    fold=True first folds every batch norm into its conv on both sides (juanji's
    nn.utils.fold_batch_norms, torch.fx.experimental.optimization.fuse). channels_last=True
    lays out the weights channels-last on both sides (and torch's input, its CPU recipe).
    """
    copy_weights(model, torch_model)
    model.eval()
    torch_model.eval()
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    tx = torch.from_numpy(x)
    if fold:
        from torch.fx.experimental.optimization import fuse

        model = fold_batch_norms(model, x[:1])
        torch_model = fuse(torch_model)
    if channels_last:
        model.to(memory_format="channels_last")
        torch_model = torch_model.to(memory_format=torch.channels_last)
        tx = tx.contiguous(memory_format=torch.channels_last)

    def juanji_infer():
        with juanji.no_grad():
            model(juanji.Tensor(x))

    def torch_infer():
        with torch.no_grad():
            torch_model(tx)

    times = interleaved({"juanji": juanji_infer, "torch": torch_infer}, warmup, repeats)
    row = summarize(label, times["juanji"], times["torch"])
    row["juanji_peak_mb"] = tracemalloc_peak_mb(juanji_infer)
    return row


def run(repeats=5, warmup=1):
    from benchmarks.torch_models import TorchMobileNetV2, TorchResNet18, TorchResNet20

    torch = setup_torch()
    torch.manual_seed(0)
    make = models.create_model
    rows = [
        train_pair(torch, "train step resnet20 b128 3x32x32", make("resnet20", num_classes=10),
                   TorchResNet20(10), 128, repeats, warmup),
        train_pair(torch, "train step mobilenet_v2 b64 3x32x32",
                   make("mobilenet_v2", num_classes=10), TorchMobileNetV2(10, dropout=0.2),
                   64, repeats, warmup),
        infer_pair(torch, "inference resnet18 b8 3x224x224", make("resnet18", num_classes=1000),
                   TorchResNet18(1000), 8, repeats, warmup),
        infer_pair(torch, "inference resnet18 b1 3x224x224", make("resnet18", num_classes=1000),
                   TorchResNet18(1000), 1, 2 * repeats, warmup),
        infer_pair(torch, "inference resnet18 b8, batch norm folded",
                   make("resnet18", num_classes=1000), TorchResNet18(1000), 8, repeats, warmup,
                   fold=True),
        infer_pair(torch, "inference resnet18 b8, channels-last weights",
                   make("resnet18", num_classes=1000), TorchResNet18(1000), 8, repeats, warmup,
                   channels_last=True),
        infer_pair(torch, "inference resnet18 b1, channels-last weights",
                   make("resnet18", num_classes=1000), TorchResNet18(1000), 1, 2 * repeats,
                   warmup, channels_last=True),
    ]
    report(rows, "models, median ms (min-max), ratio = juanji / torch")
    for row in rows:
        print(f"{row['case']:42s} juanji arrays peak (tracemalloc) {row['juanji_peak_mb']:7.1f} MB")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process peak RSS, both frameworks, all cases: {rss_mb:.0f} MB")
    return rows, rss_mb


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    run(parser.parse_args().repeats)
