"""Peak memory of a training step, juanji against PyTorch, each in a process of its own.

    python -m benchmarks.memory [--steps 3]

For each framework a fresh Python process builds ResNet-20, runs `steps` training steps
(forward, cross-entropy, backward, SGD momentum) on a random b128 3x32x32 batch and reports
its peak resident set (VmHWM) and its resident set before the first step, so the
difference is what the steps themselves needed. Separate processes keep one framework's
allocator and thread pools out of the other's numbers.
"""

import argparse
import json
import resource
import subprocess
import sys

import numpy as np

from benchmarks import THREADS

BATCH = 128


def _rss_mb():
    """Current resident set of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb():
    """Peak resident set of this process's memory map in MB: VmHWM, not ru_maxrss, which a
    child process inherits from its parent across fork and exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM line in /proc/self/status")


def _juanji_step():
    from benchmarks.common import juanji_train_step
    from juanji import models

    return juanji_train_step(models.create_model("resnet20", num_classes=10), *_batch())


def _torch_step():
    from benchmarks.common import setup_torch, torch_train_step

    torch = setup_torch()
    from benchmarks.torch_models import TorchResNet20

    return torch_train_step(torch, TorchResNet20(10), *_batch())


def _batch():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32),
            rng.integers(0, 10, BATCH))


def child(framework, steps):
    """Run in the child process: print {"before_mb", "peak_mb"} as JSON."""
    step = _juanji_step() if framework == "juanji" else _torch_step()
    before = _rss_mb()
    for _ in range(steps):
        step()
    print(json.dumps({"before_mb": before, "peak_mb": _peak_mb()}))


def run(steps=3):
    rows = {}
    for framework in ("juanji", "torch"):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--child", framework, "--steps",
             str(steps)], capture_output=True, text=True, check=True)
        rows[framework] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\npeak memory, ResNet-20 training step b{BATCH} 3x32x32, own process each "
          f"(threads={THREADS})")
    print(f"{'framework':10s} {'RSS before':>12s} {'peak RSS':>10s} {'step needs':>11s}")
    for framework, row in rows.items():
        row["step_mb"] = row["peak_mb"] - row["before_mb"]
        print(f"{framework:10s} {row['before_mb']:9.0f} MB {row['peak_mb']:7.0f} MB "
              f"{row['step_mb']:8.0f} MB")
    ratio = rows["juanji"]["step_mb"] / rows["torch"]["step_mb"]
    print(f"step memory ratio juanji / torch: {ratio:.2f}")
    rows["ratio"] = ratio
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["juanji", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
    else:
        run(args.steps)
