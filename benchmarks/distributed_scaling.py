"""Images/s of a training epoch: 1 process x 2 threads against 2 MPI ranks x 1 thread.

    python -m benchmarks.distributed_scaling [--rounds 3]

Runs `juanji train` (Fashion-MNIST, one epoch, the same global batch) as whole processes,
alternating the two set-ups round by round, and reads the training rate the epoch line prints.
Scaling efficiency = (2 ranks' images/s) / (1 process's images/s): both use the machine's two
cores, so 1.0 means data parallelism costs nothing against threads inside one process.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

from juanji import distributed

CASES = {  # name -> train flags (the global batch is the same in both set-ups)
    "LeNet-5 b128": ["--model", "lenet5", "--batch-size", "128", "--limit", "12800"],
    "ResNet-20 b128": ["--model", "resnet20", "--batch-size", "128", "--limit", "1280"],
}
RATE = re.compile(r"\| (\d+) img/s")
_runs = iter(range(1_000_000))


def images_per_s(flags, ranks, out):
    command = [sys.executable, "-m", "juanji", "train", *flags, "--epochs", "1",
               "--optimizer", "sgd", "--lr", "0.05", "--no-progress", "--out", out,
               "--name", f"run{next(_runs)}"]
    env = dict(os.environ)
    if ranks > 1:
        command = distributed.mpiexec_command(ranks, command[1:])
        env["JUANJI_NUM_THREADS"] = "1"
    else:
        env["JUANJI_NUM_THREADS"] = "2"
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return float(RATE.search(done.stdout).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if distributed.find_mpiexec() is None:
        sys.exit("needs mpiexec: pip install -e '.[distributed]'")
    print(f"{'case':18s} {'1 x 2 threads':>14s} {'2 ranks x 1':>12s} {'efficiency':>10s}")
    with tempfile.TemporaryDirectory() as out:
        for name, flags in CASES.items():
            one, two = [], []
            for _ in range(args.rounds):
                one.append(images_per_s(flags, 1, out))
                two.append(images_per_s(flags, 2, out))
            a, b = statistics.median(one), statistics.median(two)
            print(f"{name:18s} {a:12.0f}/s {b:10.0f}/s {b / a:10.2f}   "
                  f"(1: {min(one):.0f}-{max(one):.0f}, 2: {min(two):.0f}-{max(two):.0f})")


if __name__ == "__main__":
    main()
