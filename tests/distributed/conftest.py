"""`run_mpi`: launch a Python program as N MPI ranks with a hard timeout.

Tests that use it are skipped, saying why, where mpi4py or mpiexec is not installed
(`pip install mpi4py mpich`, the `distributed` extra).
"""

import os
import signal
import subprocess

import pytest

from juanji import distributed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch(n, script, args=(), timeout=60):
    """Run `python script *args` as n ranks; returns the CompletedProcess. Kills the whole
    process group and fails the test when it runs past `timeout` seconds."""
    command = distributed.mpiexec_command(n, [str(script), *map(str, args)])
    # one thread per rank: the ranks share CI's 2 cores
    env = dict(os.environ, JUANJI_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=REPO, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"mpiexec -n {n} did not end within {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.fixture(scope="session")
def run_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("needs mpi4py: pip install mpi4py mpich (the distributed extra)")
    if distributed.find_mpiexec() is None:
        pytest.skip("needs mpiexec: pip install mpich (the distributed extra)")
    return _launch
