"""Per-op forward and backward timings, juanji vs PyTorch, plus conv GFLOP/s vs sgemm.

    python -m benchmarks.ops [--repeats 10]

Each case runs the same functional op on the same float32 data in both frameworks (2 threads,
interleaved repetitions). "fwd+bwd" is one forward and one backward with a fixed upstream
gradient. The conv rows also show juanji's achieved forward GFLOP/s (2 x MACs / time) next
to NumPy's own float32 matmul GFLOP/s on this machine, the practical ceiling of an im2col +
GEMM conv, timed interleaved with it.
"""

import argparse

import numpy as np

import juanji
from benchmarks.common import interleaved, report, setup_torch, summarize
from juanji.nn import functional as F

# name -> (input NCHW, juanji call, torch call, MACs or None); weights made in `cases()`
CONV_CASES = {
    # name: (N, C, H, W, OC, K, stride, padding, dilation, groups)
    "conv 3x3 b32 64->64 32x32": (32, 64, 32, 32, 64, 3, 1, 1, 1, 1),
    "conv 5x5 b64 6->16 14x14": (64, 6, 14, 14, 16, 5, 1, 0, 1, 1),
    "conv 1x1 b32 128->64 16x16": (32, 128, 16, 16, 64, 1, 1, 0, 1, 1),
    "conv 3x3 depthwise b32 96 32x32": (32, 96, 32, 32, 96, 3, 1, 1, 1, 96),
    "conv 3x3 stride 2 b32 64->128 32x32": (32, 64, 32, 32, 128, 3, 2, 1, 1, 1),
    "conv 3x3 dilation 2 b32 32->32 32x32": (32, 32, 32, 32, 32, 3, 1, 2, 2, 1),
}


def conv_case(torch, spec, rng):
    n, c, h, w, oc, k, s, p, d, g = spec
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    weight = rng.standard_normal((oc, c // g, k, k), dtype=np.float32) * 0.1
    bias = rng.standard_normal(oc, dtype=np.float32)
    oh = (h + 2 * p - d * (k - 1) - 1) // s + 1
    macs = n * oc * oh * oh * (c // g) * k * k
    juanji_fn = lambda x, w, b: F.conv2d(x, w, b, s, p, d, g)
    torch_fn = lambda x, w, b: torch.nn.functional.conv2d(x, w, b, s, p, d, g)
    return (x, weight, bias), juanji_fn, torch_fn, macs


def other_cases(torch, rng):
    """(name, arrays, juanji fn, torch fn) for transposed conv, pooling and batch-norm."""
    x = rng.standard_normal((32, 64, 32, 32), dtype=np.float32)
    xt = rng.standard_normal((32, 64, 16, 16), dtype=np.float32)
    wt = rng.standard_normal((64, 32, 4, 4), dtype=np.float32) * 0.1
    gamma, beta = np.ones(64, np.float32), np.zeros(64, np.float32)
    tnn = torch.nn.functional
    return [
        ("conv_transpose 4x4 s2 b32 64->32 16x16", (xt, wt),
         lambda x, w: F.conv_transpose2d(x, w, None, 2, 1),
         lambda x, w: tnn.conv_transpose2d(x, w, None, 2, 1)),
        ("max_pool 2x2 b32 64 32x32", (x,), lambda x: F.max_pool2d(x, 2),
         lambda x: tnn.max_pool2d(x, 2)),
        ("max_pool 3x3 s2 p1 b32 64 32x32", (x,), lambda x: F.max_pool2d(x, 3, 2, 1),
         lambda x: tnn.max_pool2d(x, 3, 2, 1)),
        ("avg_pool 2x2 b32 64 32x32", (x,), lambda x: F.avg_pool2d(x, 2),
         lambda x: tnn.avg_pool2d(x, 2)),
        ("batch_norm train b32 64 32x32", (x, gamma, beta),
         lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True),
         lambda x, g, b: tnn.batch_norm(x, None, None, g, b, training=True)),
    ]


def time_case(torch, name, arrays, juanji_fn, torch_fn, repeats):
    """Rows for forward only and forward + backward (grads w.r.t. every float input)."""
    jin = [juanji.tensor(a, requires_grad=True) for a in arrays]
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    with juanji.no_grad():
        shape = juanji_fn(*jin).shape
    upstream = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    tup = torch.from_numpy(upstream)

    def j_fwd():
        with juanji.no_grad():
            juanji_fn(*jin)

    def t_fwd():
        with torch.no_grad():
            torch_fn(*tin)

    def j_both():
        juanji_fn(*jin).backward(upstream)

    def t_both():
        torch_fn(*tin).backward(tup)

    fwd = interleaved({"j": j_fwd, "t": t_fwd}, warmup=2, repeats=repeats)
    both = interleaved({"j": j_both, "t": t_both}, warmup=2, repeats=repeats)
    return [summarize(f"{name} fwd", fwd["j"], fwd["t"]),
            summarize(f"{name} fwd+bwd", both["j"], both["t"])]


def conv_share_of_sgemm(arrays, juanji_fn, macs, repeats, n=1024):
    """(juanji's conv forward GFLOP/s, NumPy's n^3 float32 matmul GFLOP/s): the medians of one
    interleaved run, so both see the same moment of this VM (its sgemm speed moves by 20-30%
    between runs) and the same statistic."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    inputs = [juanji.tensor(array) for array in arrays]

    def conv():
        with juanji.no_grad():
            juanji_fn(*inputs)

    times = interleaved({"conv": conv, "sgemm": lambda: a @ b}, warmup=2, repeats=repeats)
    return (2 * macs / np.median(times["conv"]) / 1e9,
            2 * n**3 / np.median(times["sgemm"]) / 1e9)


def run(repeats=10):
    """Returns (rows, [(conv case, its GFLOP/s, sgemm GFLOP/s in the same run)])."""
    torch = setup_torch()
    rng = np.random.default_rng(0)
    rows, gflops = [], []
    for name, spec in CONV_CASES.items():
        arrays, jf, tf, macs = conv_case(torch, spec, rng)
        rows += time_case(torch, name, arrays, jf, tf, repeats)
        gflops.append((name, *conv_share_of_sgemm(arrays, jf, macs, repeats)))
    for name, arrays, jf, tf in other_cases(torch, rng):
        rows += time_case(torch, name, arrays, jf, tf, repeats)
    report(rows, "per-op timings, median ms (min-max), ratio = juanji / torch")
    print("\nconv forward GFLOP/s against NumPy's float32 matmul (1024^3), interleaved, medians")
    for name, value, ceiling in gflops:
        print(f"{name:42s} {value:6.1f} GFLOP/s = {100 * value / ceiling:5.1f}% of sgemm "
              f"({ceiling:.0f} GFLOP/s)")
    return rows, gflops


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    run(parser.parse_args().repeats)
