"""Allreduce time between 2 local MPI ranks: 1M floats and 11.7M (ResNet-18's gradient).

    python -m benchmarks.distributed [--ranks 2] [--repeats 20]

Relaunches itself under mpiexec (from the `distributed` extra) when not started by one. Times,
per size, the median over `repeats` of: juanji.distributed.allreduce_sum (the non-blocking
Iallreduce polled with a deadline, what sync_gradients uses), mpi4py's blocking buffer
Allreduce, and mpi4py's pickle allreduce (the lower-case API juanji never uses), each started
after a barrier so every rank enters together.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from juanji import distributed

SIZES = {"1M floats (4 MB)": 1_000_000, "11.7M floats (47 MB, ResNet-18)": 11_689_512}


def _median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        distributed.barrier()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    # rank 0 reports the slowest rank's time of each repeat
    slowest = distributed.allgather(np.array(times)).max(axis=0)
    return 1e3 * statistics.median(slowest)


def run(repeats):
    from mpi4py import MPI

    comm = distributed.world.comm()
    rows = []
    for label, n in SIZES.items():
        a = np.ones(n, dtype=np.float32)
        juanji_ms = _median_ms(lambda a=a: distributed.allreduce_sum(a), repeats)
        blocking_ms = _median_ms(lambda a=a: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM),
                                 repeats)
        pickle_ms = _median_ms(lambda a=a: comm.allreduce(a, op=MPI.SUM), max(3, repeats // 4))
        rows.append((label, juanji_ms, blocking_ms, pickle_ms, 4 * n / (juanji_ms * 1e-3) / 1e9))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if not distributed.launched():
        command = distributed.mpiexec_command(
            args.ranks, ["-m", "benchmarks.distributed", *sys.argv[1:]])
        env = dict(os.environ, JUANJI_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        sys.exit(subprocess.run(command, env=env).returncode)
    distributed.init()
    rows = run(args.repeats)
    if distributed.is_main():
        print(f"allreduce (sum, float32) between {distributed.world_size()} ranks on one node, "
              f"median of {args.repeats}:")
        print(f"{'size':34s} {'juanji ms':>10s} {'Allreduce ms':>13s} {'pickle ms':>10s} "
              f"{'GB/s':>6s}")
        for label, juanji_ms, blocking_ms, pickle_ms, gbs in rows:
            print(f"{label:34s} {juanji_ms:10.2f} {blocking_ms:13.2f} {pickle_ms:10.2f} "
                  f"{gbs:6.2f}")


if __name__ == "__main__":
    main()
