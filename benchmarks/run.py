"""The whole benchmark suite: training steps, per-op timings with conv GFLOP/s, and models.

    python -m benchmarks.run [--json PATH] [--quick]

Runs benchmarks.train_step, benchmarks.ops, benchmarks.models and benchmarks.memory in turn (2
threads each side, see benchmarks/__init__.py) and prints their tables; --json writes every row,
the NumPy sgemm ceiling, the conv GFLOP/s and the peak memory to PATH. A full run takes a few
minutes; --quick takes fewer repetitions (noisier medians).
"""

import argparse
import json
import platform
import time

from benchmarks import THREADS, memory, models, ops, train_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the results table as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    reps = {"train": 5, "ops": 4, "models": 2} if args.quick else {
        "train": 15, "ops": 10, "models": 5}
    start = time.perf_counter()
    train_rows = train_step.run(reps["train"])
    op_rows, conv_gflops = ops.run(reps["ops"])
    model_rows, rss_mb = models.run(reps["models"])
    memory_rows = memory.run()
    elapsed = time.perf_counter() - start
    print(f"\nsuite took {elapsed:.0f} s")
    if args.json:
        result = {
            "threads": THREADS,
            "machine": platform.platform(),
            "quick": args.quick,
            "seconds": elapsed,
            "train_step": train_rows,
            "ops": op_rows,
            "models": model_rows,
            "conv_forward_gflops": [
                {"case": name, "gflops": g, "sgemm_gflops": sgemm,
                 "percent_of_sgemm": 100 * g / sgemm}
                for name, g, sgemm in conv_gflops],
            "peak_rss_mb": rss_mb,
            "resnet20_step_memory": memory_rows,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
