"""Which samples each rank works on: contiguous slices of the global batch, and reduced metrics.

Every rank iterates the same DataLoader with the same seed, so every rank sees the same global
batch (the same permutation, the same augmentation draws); each then keeps its own contiguous
slice. Slices differ in size by at most one sample (the first `B % world` ranks take one more),
nothing is padded or repeated, and every rank runs the same number of steps. Together with
`DistributedDataParallel.sync_gradients(local_count)` a step is the one-process step over the
global batch.
"""

import numbers

import numpy as np

from juanji.distributed import world


def shard_bounds(n, rank, world_size):
    """[start, stop) of rank `rank`'s contiguous slice of n items split over world_size ranks."""
    for name, value in (("n", n), ("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative int; got {name}={value!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be a positive int; got world_size={world_size!r}")
    if rank >= world_size:
        raise ValueError(f"rank must be in [0, world_size); got rank={rank}, "
                         f"world_size={world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def shard(indices_or_n, rank=None, world_size=None):
    """Rank `rank`'s contiguous slice of `indices_or_n` (a 1-D sequence, or an int n for
    range(n)) split over `world_size` ranks; both default to this process's. Returns an int64
    array; the slices of all ranks, in rank order, are the input exactly once."""
    rank = world.rank() if rank is None else rank
    world_size = world.world_size() if world_size is None else world_size
    if isinstance(indices_or_n, numbers.Integral) and not isinstance(indices_or_n, bool):
        if indices_or_n < 0:
            raise ValueError(f"n must be a non-negative int; got {indices_or_n!r}")
        indices = np.arange(int(indices_or_n), dtype=np.int64)
    else:
        indices = np.asarray(indices_or_n)
        if indices.ndim != 1:
            raise ValueError(f"indices_or_n must be an int or a 1-D sequence of indices; got "
                             f"shape {indices.shape}")
    start, stop = shard_bounds(len(indices), rank, world_size)
    return indices[start:stop]


def local_batch(batch, rank=None, world_size=None):
    """This rank's part of a global batch from the DataLoader: each array of `batch` (a tuple
    such as (images, labels), all with the same first dimension B, or one array) sliced to the
    rank's contiguous rows [start, stop). Returns the same structure; its length along axis 0 is
    the `local_count` to pass to `sync_gradients`."""
    rank = world.rank() if rank is None else rank
    world_size = world.world_size() if world_size is None else world_size
    arrays = batch if isinstance(batch, (tuple, list)) else (batch,)
    sizes = {len(a) for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"local_batch expects arrays with the same first dimension; got "
                         f"lengths {[len(a) for a in arrays]}")
    start, stop = shard_bounds(sizes.pop(), rank, world_size)
    parts = tuple(a[start:stop] for a in arrays)
    if not isinstance(batch, (tuple, list)):
        return parts[0]
    return type(batch)(parts)


def reduce_metrics(sum_loss, correct, seen, timeout=None):
    """Sum evaluation totals over all ranks: (sum of per-sample losses, correct predictions,
    samples seen) of this rank's shard -> the same global totals on every rank, as
    (float sum_loss, int correct, int seen). Mean loss and accuracy are then exact."""
    totals = np.array([sum_loss, correct, seen], dtype=np.float64)
    world.allreduce_sum(totals, "the evaluation metrics allreduce", timeout)
    return float(totals[0]), int(round(totals[1])), int(round(totals[2]))
