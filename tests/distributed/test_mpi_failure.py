"""One failing rank ends the whole MPI job, non-zero and with its message, instead of hanging.

Without juanji's hooks a raise or a sys.exit on one rank leaves the others waiting forever in
their next collective (measured with MPICH); the hard timeout of `run_mpi` turns a hang into a
failure.
"""

import os

import pytest

PROGRAM = r'''
"""Three training steps of a linear layer on 2 ranks; rank 1 fails at step 2 as argv[1] says."""
import os
import signal
import sys
import time

import numpy as np

import juanji
import juanji.nn as nn
from juanji import distributed

mode = sys.argv[1]
distributed.init()
rank = distributed.rank()
model = nn.Linear(3, 4 if mode == "mismatch" and rank == 1 else 2)
ddp = distributed.DistributedDataParallel(model)
x = juanji.tensor(np.ones((4, 3), dtype=np.float32))
for step in range(1, 4):
    if rank == 1 and step == 2:
        if mode == "raise":
            raise RuntimeError("rank one failed on purpose")
        if mode == "exit":
            sys.exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "stall":
            time.sleep(60)
    ddp.zero_grad()
    ddp(x).sum().backward()
    ddp.sync_gradients(4, timeout=3)
pinned = distributed.set_local_threads()  # JUANJI_NUM_THREADS=1 (see conftest) wins
del os.environ["JUANJI_NUM_THREADS"]
threads = distributed.set_local_threads()
print(f"rank {rank} finished on a node of {distributed.local_size()} ranks with {threads} "
      f"threads ({pinned} pinned)")
'''

MESSAGES = {
    "raise": "rank 1 of 2: RuntimeError: rank one failed on purpose",
    "exit": "rank 1 exited while this rank waits for it in the gradient allreduce of step 2",
    "kill": "",  # the launcher reports the killed rank and ends the others
    "stall": "the gradient allreduce of step 2 did not finish within 3 s",
    "mismatch": "the ranks' models differ: rank 1 has parameter weight (4, 3) float32 where "
                "rank 0 has parameter weight (2, 3) float32",
}


@pytest.mark.parametrize("mode", list(MESSAGES))
def test_a_failing_rank_ends_the_job(run_mpi, tmp_path, mode):
    script = tmp_path / "fail.py"
    script.write_text(PROGRAM)
    result = run_mpi(2, script, [mode], timeout=30)
    assert result.returncode != 0
    assert "finished" not in result.stdout
    assert MESSAGES[mode] in result.stderr


def test_a_clean_run_ends_with_zero(run_mpi, tmp_path):
    script = tmp_path / "fine.py"
    script.write_text(PROGRAM)
    result = run_mpi(2, script, ["none"], timeout=30)
    assert result.returncode == 0, result.stderr
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    for rank in (0, 1):
        assert (f"rank {rank} finished on a node of 2 ranks with {threads} threads (1 pinned)"
                in result.stdout)
