"""Data-parallel training over MPI: `mpiexec -n 2 python train.py` runs 2 ranks.

Every rank holds the whole model and takes a contiguous slice of each global batch;
DistributedDataParallel averages the gradients over the global batch, so N ranks train exactly
as one process does (up to float rounding). Without a launcher this is a world of one and
mpi4py is never imported. mpi4py and an MPI come with `pip install 'juanji[distributed]'`.
"""

from juanji.distributed.ddp import DistributedDataParallel, check_same_structure
from juanji.distributed.failure import abort
from juanji.distributed.launch import find_mpiexec, mpiexec_command
from juanji.distributed.sharding import local_batch, reduce_metrics, shard, shard_bounds
from juanji.distributed.world import (
    allgather,
    allreduce_sum,
    barrier,
    broadcast_,
    broadcast_bytes,
    get_timeout,
    init,
    is_main,
    launched,
    local_size,
    rank,
    set_local_threads,
    set_timeout,
    world_size,
)

__all__ = [
    "DistributedDataParallel", "abort", "allgather", "allreduce_sum", "barrier", "broadcast_",
    "broadcast_bytes",
    "check_same_structure", "find_mpiexec", "get_timeout", "init", "is_main", "launched",
    "local_batch", "local_size", "mpiexec_command", "rank", "reduce_metrics",
    "set_local_threads", "set_timeout", "shard", "shard_bounds", "world_size",
]
