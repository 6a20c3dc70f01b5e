"""Abort on failure: one rank's error ends the whole MPI job, non-zero, within seconds.

An MPI job whose rank raises or exits early otherwise hangs: the other ranks wait forever in
their next collective and the failing rank waits in MPI_Finalize (measured with MPICH and Open
MPI). `install()` (called by `juanji.distributed.init()` under a launcher) closes both paths:

- an uncaught exception prints its traceback, then a line naming the rank, and calls
  MPI_Abort, which the launcher turns into the end of every rank;
- every rank leaving Python (sys.exit, the end of the script) first sends an exit notice to the
  others and then waits for theirs, an exit barrier: at the end of a clean run all ranks meet
  there; a rank that left early is noticed by the others in their next collective (see
  `juanji.distributed.world.wait`), which then aborts the job. A rank killed by a signal is
  ended by the launcher itself, which tears the job down.

A stalled rank (alive, but never reaching the collective) is caught by the deadline of `wait`.
"""

import atexit
import sys
import time

import numpy as np

EXIT_TAG = 7  # the tag of exit notices on the notices communicator
GRACE = 2.0  # seconds a collective may still take to complete after a peer's exit notice

_installed = False


def install():
    """Install the exception hook and the exit barrier (once; under a launcher only)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        previous(kind, value, tb)
        code = 130 if issubclass(kind, KeyboardInterrupt) else 1
        abort(code, f"{kind.__name__}: {value}" if str(value) else kind.__name__)

    sys.excepthook = excepthook
    atexit.register(_exit_barrier)


def abort(code=1, message=None):
    """Print `message` with this rank's number on stderr and end the whole job with `code`.

    Under MPI this is MPI_Abort on COMM_WORLD: the launcher ends every rank and exits non-zero.
    In a world of one it raises SystemExit(code) after printing.
    """
    from juanji.distributed import world

    if message:
        prefix = f"juanji.distributed: rank {world.rank()} of {world.world_size()}"
        print(f"{prefix}: {message}; aborting the job", file=sys.stderr, flush=True)
    sys.stdout.flush()
    if world.comm() is None:
        raise SystemExit(code)
    from mpi4py import MPI

    # the launcher forwards output asynchronously and drops what it has not read when the
    # abort tears the job down: give it a moment to read the message
    time.sleep(0.2)
    MPI.COMM_WORLD.Abort(int(code))


def check_exits(request, what):
    """Abort when another rank has sent its exit notice and `request` (an MPI collective this
    rank waits in) does not complete within GRACE seconds: that rank has left the job."""
    from mpi4py import MPI

    from juanji.distributed import world

    status = MPI.Status()
    if not world._world().notices.Iprobe(MPI.ANY_SOURCE, EXIT_TAG, status):
        return
    # A rank that completed this collective and then exited sent its notice after taking part:
    # the request completes as soon as this rank makes progress on it.
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        if request.Test():
            return
        time.sleep(1e-3)
    if request.Test():
        return
    abort(1, f"rank {status.Get_source()} exited while this rank waits for it in {what}")


def _exit_barrier():
    """At exit: tell every other rank this one leaves, then wait until each has said the same."""
    from mpi4py import MPI

    from juanji.distributed import world

    state = world._world()
    empty = np.empty(0, dtype=np.uint8)
    peers = [r for r in range(state.size) if r != state.rank]
    requests = [state.notices.Isend(empty, dest=r, tag=EXIT_TAG) for r in peers]
    requests += [state.notices.Irecv(np.empty(0, dtype=np.uint8), source=r, tag=EXIT_TAG)
                 for r in peers]
    sys.stdout.flush()
    sys.stderr.flush()
    while not MPI.Request.Testall(requests):
        time.sleep(1e-3)

