"""The seeds' networks in juanji and PyTorch, each case a fresh process that imports NumPy first.

    python -m benchmarks.speed [--rounds 5] [--cases lenet5,resnet20] [--fused] [--import-order]

A user's script imports NumPy before juanji and sets no environment variable, so this is how
each case runs here: a new Python process (no OPENBLAS_THREAD_TIMEOUT, no JUANJI_NUM_THREADS;
BLAS and torch at THREADS threads) imports NumPy, then juanji or torch, builds the model, runs
warm-up steps and times `--steps` more. Rounds interleave the processes (juanji, torch,
juanji, torch, ...) so drifts in machine load hit both alike. Each process reports the median
of its steps; the table gives the median over rounds with the min-max spread, and the ratio of
the medians.

--fused adds a juanji column for the same model after `juanji.nn.utils.fuse_activations` (and,
for inference, `fold_batch_norms` first): what a user who asks for the fused passes runs.

--import-order instead times juanji's ResNet-20 step in processes that import juanji first
against processes that import NumPy and torch first (tests/test_backend.py checks the BLAS
thread settings inside the ops; this shows what they are for).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks import THREADS
from benchmarks.common import format_spread, spread

REPO = Path(__file__).resolve().parent.parent

# case: (what is timed, model name, batch, input C x H x W, classes, steps, warm-up)
CASES = {
    "simple_convnet": ("train", "simple_convnet", 100, (1, 28, 28), 10, 30, 5),
    "lenet5": ("train", "lenet5", 128, (1, 28, 28), 10, 30, 5),
    "resnet20": ("train", "resnet20", 128, (3, 32, 32), 10, 8, 3),
    "resnet18_b8": ("infer", "resnet18", 8, (3, 224, 224), 1000, 8, 3),
}
FRAMEWORKS = ("juanji", "juanji-fused", "torch", "dezero")
IMPORTS = {
    "numpy-first": "import numpy\nimport torch\nimport juanji\n",
    "juanji-first": "import juanji\nimport numpy\nimport torch\n",
}


def child_env():
    """The environment of a user's script: none of the variables that hide the import-order
    trap, BLAS and OpenMP at THREADS threads."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "JUANJI_NUM_THREADS")}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(THREADS)
    env["JUANJI_BENCH_CHILD"] = "1"  # benchmarks/__init__.py leaves the environment alone
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(case, framework, imports="import numpy\n"):
    """Median seconds per step of `case` in a new process that runs `imports` first."""
    code = (imports + "from benchmarks.speed import child\n"
            f"child({case!r}, {framework!r})\n")
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["median_s"]


def child(case, framework):
    """Build the case in `framework`, time it, print {"median_s": ...} as the last line."""
    import time

    import numpy as np

    what, name, batch, shape, classes, steps, warmup = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    y = rng.integers(0, classes, batch)
    step = {"juanji": _juanji_step, "juanji-fused": _juanji_fused_step, "torch": _torch_step,
            "dezero": _dezero_step}[framework](what, name, classes, x, y)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_s": statistics.median(times)}))


def _juanji_fused_step(what, name, classes, x, y):
    return _juanji_step(what, name, classes, x, y, fused=True)


def _juanji_step(what, name, classes, x, y, fused=False):
    import juanji
    from benchmarks.common import juanji_train_step
    from juanji import models
    from juanji.nn.utils import fold_batch_norms, fuse_activations

    if len(os.sched_getaffinity(0)) > THREADS:
        juanji.set_num_threads(THREADS)
    juanji.manual_seed(0)
    model = models.create_model(name, num_classes=classes)
    if fused and what == "infer":
        model = fold_batch_norms(model.eval(), x[:2])
    if fused:
        fuse_activations(model, x[:2])
    if what == "train":
        return juanji_train_step(model, x, y)
    model.eval()

    def infer():
        with juanji.no_grad():
            model(juanji.Tensor(x))

    return infer


def _torch_step(what, name, classes, x, y):
    from benchmarks.common import setup_torch, torch_train_step

    torch = setup_torch()
    torch.manual_seed(0)
    model = _torch_model(torch, name, classes)
    if what == "train":
        return torch_train_step(torch, model, x, y)
    model.eval()
    tx = torch.from_numpy(x)

    def infer():
        with torch.no_grad():
            model(tx)

    return infer


def _torch_model(torch, name, classes):
    from benchmarks import torch_models, train_step

    if name == "simple_convnet":
        return train_step.torch_simple_convnet(torch)
    if name == "lenet5":
        return train_step.torch_lenet5(torch)
    if name == "resnet20":
        return torch_models.TorchResNet20(classes)
    return torch_models.TorchResNet18(classes)


def _dezero_step(what, name, classes, x, y):
    from benchmarks.dezero_models import dezero_resnet20_step

    if name != "resnet20":
        raise ValueError(f"DeZero runs only the resnet20 case; got {name!r}")
    return dezero_resnet20_step(x, y)


def compare(cases, rounds, dezero=False, fused=False):
    """Interleaved rounds of every case in juanji and torch (and juanji fused, and DeZero's
    ResNet-20)."""
    times = {(case, fw): [] for case in cases for fw in FRAMEWORKS}
    for r in range(rounds):
        for case in cases:
            for fw in ("juanji", "juanji-fused", "torch") if fused else ("juanji", "torch"):
                times[case, fw].append(run_child(case, fw))
            if dezero and case == "resnet20" and r < 2:  # slow: two rounds are enough
                times[case, "dezero"].append(run_child(case, "dezero"))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    print(f"\nprocesses importing NumPy first, median over {rounds} rounds (min-max), "
          f"threads={THREADS}")
    print(f"{'case':16s} {'juanji ms':>20s} {'torch ms':>20s} {'ratio':>6s}")
    rows = []
    for case in cases:
        j, t = spread(times[case, "juanji"]), spread(times[case, "torch"])
        rows.append({"case": case, "juanji": j, "torch": t, "ratio": j[0] / t[0]})
        print(f"{case:16s} {format_spread(j):>20s} {format_spread(t):>20s} {j[0] / t[0]:6.2f}")
        if times[case, "juanji-fused"]:
            f = spread(times[case, "juanji-fused"])
            rows[-1]["juanji_fused"] = f
            print(f"{'  fused':16s} {format_spread(f):>20s} {'':>20s} {f[0] / t[0]:6.2f}")
        if times[case, "dezero"]:
            d = spread(times[case, "dezero"])
            rows[-1]["dezero"] = d
            print(f"{'  dezero':16s} {format_spread(d):>20s} {'':>20s}  juanji is "
                  f"{d[0] / j[0]:.1f}x faster")
    return rows


def import_order(rounds):
    """juanji's ResNet-20 step when NumPy and torch come first, against juanji first."""
    times = {order: [] for order in IMPORTS}
    for _ in range(rounds):
        for order, imports in IMPORTS.items():
            times[order].append(run_child("resnet20", "juanji", imports))
    first, last = spread(times["juanji-first"]), spread(times["numpy-first"])
    print(f"\njuanji resnet20 step, median over {rounds} processes (min-max)")
    print(f"  juanji imported first:        {format_spread(first)} ms")
    print(f"  NumPy and torch imported first: {format_spread(last)} ms  "
          f"ratio {last[0] / first[0]:.2f}")
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--dezero", action="store_true",
                        help="also time DeZero's ResNet-20 step (pip install dezero)")
    parser.add_argument("--fused", action="store_true",
                        help="also time juanji with fuse_activations (and fold_batch_norms "
                        "to infer)")
    parser.add_argument("--import-order", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.import_order:
        result = import_order(args.rounds)
    else:
        cases = args.cases.split(",")
        unknown = sorted(set(cases) - set(CASES))
        if unknown:
            parser.error(f"unknown case {unknown[0]!r}; expected one of {', '.join(CASES)}")
        result = compare(cases, args.rounds, args.dezero, args.fused)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
