"""DistributedDataParallel: the same model on every rank, gradients averaged over the global batch.

Every rank holds a full copy of the model and runs forward and backward on its own part of the
global batch (see `juanji.distributed.sharding`). `sync_gradients(local_count)` then replaces
every gradient by the global batch's gradient, the same array on every rank, so the optimizer
step that follows runs identically everywhere and the copies never drift apart:

    ddp = DistributedDataParallel(model)          # rank 0's weights on every rank
    optimizer = optim.SGD(ddp.parameters(), lr=0.1)
    for images, labels in loader:                 # the global batch, the same on every rank
        x, y = local_batch((images, labels))      # this rank's contiguous slice
        optimizer.zero_grad()
        loss = F.cross_entropy(ddp(juanji.tensor(x)), juanji.tensor(y))  # mean over the slice
        loss.backward()
        ddp.sync_gradients(len(y))
        optimizer.step()
"""

import hashlib

import numpy as np

from juanji.distributed import world
from juanji.nn.module import Module


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the ranks of the MPI world.

    At construction: checks that every rank built the same model (parameter and buffer names,
    shapes, dtypes; a ValueError naming the first difference, raised on every rank), then copies
    rank 0's parameters and buffers to all ranks. forward passes through to `module`; with
    broadcast_buffers (as PyTorch) each training forward first copies rank 0's buffers (batch
    norm running statistics) to every rank, so evaluation and checkpoints agree everywhere.
    State-dict keys gain the prefix `module.`, as PyTorch's. In a world of one it only wraps.
    """

    def __init__(self, module, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"module must be a juanji.nn.Module; got {type(module).__name__}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.steps = 0  # sync_gradients calls so far: the step named in a timeout message
        self._flat = None  # the fused gradient buffer, made on the first sync
        world.init()
        if world.world_size() > 1:
            check_same_structure(module)
            _broadcast_arrays([p.data for p in module.parameters()], "the initial parameters")
            self._broadcast_buffers("the initial buffers")

    def forward(self, *args, **kwargs):
        if self.training and self.broadcast_buffers and world.world_size() > 1:
            self._broadcast_buffers("a forward's buffer broadcast")
        return self.module(*args, **kwargs)

    def _broadcast_buffers(self, what):
        _broadcast_arrays([buf.data for buf in self.module.buffers()], what)

    def sync_gradients(self, local_count, timeout=None, step=None):
        """Replace every parameter's gradient by its average over the global batch.

        Call after backward, with `local_count` the samples this rank's loss averaged over (its
        share of the global batch; 0 for none, with no gradients). The result is
        sum over ranks of grad * local_count / global count: exact for uneven shards, assuming
        each rank's loss is the mean over its samples. All gradients travel in ONE fused buffer
        (float32 for a float32 model) and one allreduce, with one flag per parameter: a
        parameter that has no gradient on any rank keeps None, one with a gradient on some rank
        gets the average on all (None counting as zeros). Every rank ends with the same arrays.

        The allreduce is polled with a deadline: after `timeout` seconds (None: the world's,
        300 s unless `juanji.distributed.set_timeout` changed it) the job is aborted with a
        message naming `step` (default: the count of sync_gradients calls).
        Returns the global sample count.
        """
        if (isinstance(local_count, bool) or not isinstance(local_count, (int, np.integer))
                or local_count < 0):
            raise ValueError(f"local_count must be a non-negative int; got {local_count!r}")
        self.steps += 1
        if world.world_size() == 1:
            if local_count == 0:
                raise ValueError("sync_gradients: the global batch is empty (local_count=0)")
            return int(local_count)
        params = list(self.module.parameters())
        flat = self._fused_buffer(params)  # (total elements + one flag per parameter + count,)
        sizes = [p.data.size for p in params]
        flags = flat[sum(sizes) : -1]
        offset = 0
        for i, (p, n) in enumerate(zip(params, sizes)):
            view = flat[offset : offset + n].reshape(p.data.shape)
            if p.grad is None:
                view[...] = 0
            else:
                np.multiply(p.grad, flat.dtype.type(local_count), out=view)
            flags[i] = p.grad is not None
            offset += n
        flat[-1] = local_count
        what = f"the gradient allreduce of step {self.steps if step is None else step}"
        world.allreduce_sum(flat, what, timeout)
        total = flat[-1]
        if total == 0:
            raise ValueError("sync_gradients: the global batch is empty (local_count=0 on "
                             "every rank)")
        offset = 0
        for p, n, flag in zip(params, sizes, flags):
            if flag > 0:
                mean = flat[offset : offset + n].reshape(p.data.shape) / total
                if p.grad is None:
                    p.grad = mean.astype(p.data.dtype, copy=False)
                else:
                    p.grad[...] = mean
            offset += n
        return int(total)

    def _fused_buffer(self, params):
        dtype = np.result_type(*(p.data.dtype for p in params)) if params else np.float32
        size = sum(p.data.size for p in params) + len(params) + 1
        if self._flat is None or self._flat.size != size or self._flat.dtype != dtype:
            self._flat = np.empty(size, dtype=dtype)
        return self._flat


def _signature(module):
    """One line per parameter and buffer: kind, name, shape, dtype."""
    lines = [f"parameter {name} {tuple(p.shape)} {p.data.dtype}"
             for name, p in module.named_parameters()]
    lines += [f"buffer {name} {tuple(b.shape)} {b.data.dtype}"
              for name, b in module.named_buffers()]
    return lines


def check_same_structure(module):
    """Raise the same ValueError on every rank unless all ranks' `module`s have the same
    parameter and buffer names, shapes and dtypes (compares SHA-256 digests, then the
    lines of the first rank that differs)."""
    lines = _signature(module)
    text = "\n".join(lines).encode()
    digest = np.frombuffer(hashlib.sha256(text).digest(), dtype=np.uint8)
    digests = world.allgather(digest, "the model structure check")  # (world, 32)
    if (digests == digests[0]).all():
        return
    texts = _allgather_bytes(text)
    other = next(r for r in range(len(texts)) if texts[r] != texts[0])
    first, theirs = texts[0].decode().split("\n"), texts[other].decode().split("\n")
    mine_line, their_line = "nothing", "nothing"
    for i in range(max(len(first), len(theirs))):
        mine_line = first[i] if i < len(first) else "nothing"
        their_line = theirs[i] if i < len(theirs) else "nothing"
        if mine_line != their_line:
            break
    raise ValueError(f"the ranks' models differ: rank {other} has {their_line} where rank 0 "
                     f"has {mine_line}; build the same model on every rank")


def _allgather_bytes(data):
    """Every rank's bytes `data` (lengths may differ), as a list indexed by rank."""
    lengths = world.allgather(np.array(len(data), dtype=np.int64), "the model structure check")
    counts = [int(n) for n in lengths]
    offsets = [sum(counts[:r]) for r in range(len(counts))]
    out = np.empty(sum(counts), dtype=np.uint8)
    mine = np.frombuffer(data, dtype=np.uint8)
    world.wait(world.comm().Iallgatherv(mine, [out, (counts, offsets)]),
               "the model structure check")
    return [out[o : o + n].tobytes() for o, n in zip(offsets, counts)]


def _broadcast_arrays(arrays, what):
    """Copy rank 0's values of `arrays` into them on every rank: one broadcast per dtype."""
    by_dtype = {}
    for array in arrays:
        by_dtype.setdefault(array.dtype, []).append(array)
    for dtype in sorted(by_dtype, key=str):  # the same order on every rank
        group = by_dtype[dtype]
        flat = np.concatenate([a.reshape(-1) for a in group])
        world.broadcast_(flat, 0, what)
        offset = 0
        for a in group:
            a[...] = flat[offset : offset + a.size].reshape(a.shape)
            offset += a.size
