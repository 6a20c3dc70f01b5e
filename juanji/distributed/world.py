"""The MPI world: which rank this process is, how many there are, and the collectives juanji uses.

Without a launcher (no mpiexec / mpirun / srun environment) the world is one process and mpi4py
is never imported: every collective is then the identity. Under a launcher `init()` imports
mpi4py, duplicates COMM_WORLD (juanji's messages never match the user's own), and installs the
failure handling of `juanji.distributed.failure`.

Collectives move NumPy arrays with mpi4py's buffer API (upper-case methods), never its pickle
API. Each one is started non-blocking and polled by `wait`, which gives up after a deadline and
notices when another rank has exited, so a dead or stalled rank ends the job instead of hanging
it.
"""

import os
import time

import numpy as np

# Variables a launcher sets in every rank's environment: MPICH/Hydra and Intel MPI (PMI_RANK),
# Open MPI (OMPI_COMM_WORLD_RANK), PMIx launchers such as srun --mpi=pmix (PMIX_RANK),
# MVAPICH (MV2_COMM_WORLD_RANK).
LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                 "MV2_COMM_WORLD_RANK")

_state = None  # set by init(): the _World this process belongs to
_timeout = 300.0  # seconds: the deadline of a collective called with timeout=None


class _World:
    """rank, size and local size; comm is None in a world of one (no MPI)."""

    def __init__(self, comm=None, notices=None, local=1):
        self.comm, self.notices = comm, notices
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.local_size = local


def launched():
    """True when a launcher (mpiexec, mpirun, srun) started this process as an MPI rank."""
    return any(var in os.environ for var in LAUNCHER_VARS)


def init():
    """Join the MPI world once (later calls do nothing); returns world_size().

    Under a launcher: imports mpi4py, duplicates COMM_WORLD, counts the ranks on this node
    (`local_size`) and installs the abort-on-failure hooks (`juanji.distributed.failure`).
    Without one: a world of one, and mpi4py is not imported.
    """
    global _state
    if _state is not None:
        return _state.size
    if not launched():
        _state = _World()
        return 1
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise RuntimeError("this process was started by an MPI launcher but mpi4py is not "
                           "installed; pip install 'juanji[distributed]'") from error
    comm = MPI.COMM_WORLD.Dup()
    notices = MPI.COMM_WORLD.Dup()  # exit notices only (see juanji.distributed.failure)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks that share this node's memory
    local = node.Get_size()
    node.Free()
    _state = _World(comm, notices, local)
    from juanji.distributed import failure

    failure.install()
    return _state.size


def _world():
    if _state is None:
        init()
    return _state


def rank():
    """This process's rank in [0, world_size()); 0 in a world of one."""
    return _world().rank


def world_size():
    """Number of processes in the job; 1 without a launcher."""
    return _world().size


def is_main():
    """True on rank 0, the rank that prints, shows progress and writes files."""
    return _world().rank == 0


def local_size():
    """Number of ranks on this node (from MPI's shared-memory split); 1 in a world of one."""
    return _world().local_size


def comm():
    """juanji's communicator (a duplicate of COMM_WORLD), or None in a world of one."""
    return _world().comm


def set_timeout(seconds):
    """Set the deadline of every collective called with timeout=None (default 300 s): a rank
    waiting longer aborts the job. math.inf waits forever."""
    global _timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"timeout must be a number of seconds > 0; got {seconds!r}")
    _timeout = float(seconds)


def get_timeout():
    """The deadline in seconds of a collective called with timeout=None (see set_timeout)."""
    return _timeout


def wait(request, what, timeout=None):
    """Poll a non-blocking MPI request until it completes.

    `what` names the operation in messages ("the gradient allreduce of step 12"). After
    `timeout` seconds (None: `get_timeout()`, 300 s by default) every rank that is still
    waiting aborts the job with a message saying so; when another rank has exited meanwhile,
    it aborts at once (see `juanji.distributed.failure.check_exits`). Spins for the first
    millisecond (a collective between ranks that are in step completes in microseconds), then
    sleeps up to 1 ms between polls so a waiting rank leaves its core to the others.
    """
    from juanji.distributed import failure

    timeout = _timeout if timeout is None else timeout
    start = time.monotonic()
    pause = 0.0
    while not request.Test():
        now = time.monotonic()
        if now - start > timeout:
            failure.abort(1, f"{what} did not finish within {timeout:g} s: another rank stalled "
                           f"or died (raise the timeout if a step legitimately takes longer)")
        if now - start > 1e-3:
            failure.check_exits(request, what)
            pause = min(max(pause * 2, 1e-5), 1e-3)
            time.sleep(pause)


def allreduce_sum(array, what="an allreduce", timeout=None):
    """Sum `array` (a C-contiguous NumPy array) over all ranks, in place; returns it."""
    world = _world()
    if world.comm is None:
        return array
    _check_buffer(array, "allreduce_sum")
    from mpi4py import MPI

    wait(world.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM), what, timeout)
    return array


def broadcast_(array, root=0, what="a broadcast", timeout=None):
    """Overwrite `array` (C-contiguous) on every rank with rank `root`'s values; returns it."""
    world = _world()
    if not 0 <= root < world.size:
        raise ValueError(f"root must be a rank in [0, {world.size}); got root={root!r}")
    if world.comm is None:
        return array
    _check_buffer(array, "broadcast_")
    wait(world.comm.Ibcast(array, root=root), what, timeout)
    return array


def broadcast_bytes(data, root=0, what="a broadcast", timeout=None):
    """Rank `root`'s bytes `data` on every rank (the others pass anything, e.g. None): its
    length, then the bytes, through the buffer API (never pickle)."""
    world = _world()
    if world.comm is None:
        return data
    length = np.array(len(data) if world.rank == root else 0, dtype=np.int64)
    broadcast_(length, root, what, timeout)
    buffer = np.frombuffer(data, dtype=np.uint8).copy() if world.rank == root else \
        np.empty(int(length), dtype=np.uint8)
    broadcast_(buffer, root, what, timeout)
    return buffer.tobytes()


def allgather(array, what="an allgather", timeout=None):
    """Every rank's `array` (same shape and dtype on all ranks) stacked: (world_size, *shape)."""
    world = _world()
    array = np.array(array, order="C")  # a copy; ascontiguousarray would make 0-d arrays 1-d
    out = np.empty((world.size,) + array.shape, dtype=array.dtype)
    if world.comm is None:
        out[0] = array
        return out
    wait(world.comm.Iallgather(array, out), what, timeout)
    return out


def barrier(what="a barrier", timeout=None):
    """Wait until every rank has reached its barrier (a no-op in a world of one)."""
    world = _world()
    if world.comm is not None:
        wait(world.comm.Ibarrier(), what, timeout)


def _check_buffer(array, name):
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise TypeError(f"{name} expects a C-contiguous NumPy array; got "
                        f"{type(array).__name__}" + (" (not contiguous)"
                                                     if isinstance(array, np.ndarray) else ""))
    if not array.flags.writeable:
        raise ValueError(f"{name} works in place and needs a writeable array")


def set_local_threads():
    """Set juanji's kernel threads and the BLAS threads to this rank's share of the cores:
    the cores this process may run on divided by the ranks on its node (`local_size()`), at
    least 1. Returns the thread count. A JUANJI_NUM_THREADS the user set wins (nothing is
    changed), as it should where the launcher binds each rank to its own cores.
    """
    import juanji

    if os.environ.get("JUANJI_NUM_THREADS"):
        return juanji.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // local_size())
    juanji.set_num_threads(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads, user_api="blas")
    return threads
