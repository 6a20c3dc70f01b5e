"""N ranks under mpiexec train exactly as one process does.

A small program written to a temporary folder runs as `mpiexec -n N` (see conftest.run_mpi);
the same program, imported here, gives the one-process reference: a world of one, as there
is no launcher in the test process.
"""

import importlib.util

import numpy as np
import pytest

PROGRAM = r'''
"""Train a conv + batch norm + linear model on random data: a world of one, or one rank of N."""
import os
import sys

import numpy as np

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji import distributed, optim
from juanji.data import ArrayDataset, DataLoader

CONFIGS = [("sgd", 7), ("sgd", 8), ("adam", 7)]  # (optimizer, global batch)
STEPS = 5


def build(seed):
    juanji.manual_seed(seed)
    # no conv bias before batch norm: its gradient is zero up to round-off, which Adam's
    # normalised step would turn into full-size steps in an arbitrary direction
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def train(name, batch, rank=0, world=1):
    """Weights and buffers after STEPS steps on global batches of `batch` (the last one short)."""
    model = build(seed=rank)  # the ranks start from different weights: DDP copies rank 0's
    if world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ddp = distributed.DistributedDataParallel(model)
    if name == "sgd":
        opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = optim.Adam(ddp.parameters(), lr=0.01)
    rng = np.random.default_rng(1)
    n = batch * (STEPS - 1) + 3
    images = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 5, n)
    loader = DataLoader(ArrayDataset(images, labels), batch_size=batch, shuffle=True, seed=2)
    for global_batch in loader:
        x, y = distributed.local_batch(global_batch, rank, world)
        opt.zero_grad()
        loss = F.cross_entropy(ddp(juanji.tensor(x)), juanji.tensor(y))
        loss.backward()
        ddp.sync_gradients(len(y))
        opt.step()
    return {k: np.array(v) for k, v in model.state_dict().items()}


def batch_norm_step(rank=0, world=1):
    """Output, running statistics and gradients of one training batch norm on a global batch
    of 5 (uneven slices), its input shifted far from zero."""
    rng = np.random.default_rng(3)
    x_global = (rng.standard_normal((5, 3, 4, 6)) * 2 + 50).astype(np.float32)
    upstream = rng.standard_normal(x_global.shape).astype(np.float32)
    juanji.manual_seed(0)
    bn = nn.SyncBatchNorm(3) if world > 1 else nn.BatchNorm2d(3)
    bn.weight.data[...] = [0.5, 1.5, -1.0]
    bn.bias.data[...] = [0.1, -0.2, 0.3]
    x_np, c = distributed.local_batch((x_global, upstream), rank, world)
    x = juanji.tensor(x_np, requires_grad=True)
    y = bn(x)
    # each rank's loss is a mean over its samples (as sync_gradients assumes): the global
    # loss sum(y * c) / 5 is their average weighted by the local sample counts
    local = len(x_np)
    ((y * juanji.tensor(c)).sum() / local).backward()
    # x_grad: the global loss's gradient times 5 (see the test)
    return {"y": y.data, "x_grad": x.grad * local, "weight_grad": bn.weight.grad,
            "bias_grad": bn.bias.grad, "running_mean": bn.running_mean.data,
            "running_var": bn.running_var.data}


if __name__ == "__main__":
    out = sys.argv[1]
    distributed.init()
    rank, world = distributed.rank(), distributed.world_size()
    for name, batch in CONFIGS:
        np.savez(os.path.join(out, f"{name}{batch}-rank{rank}.npz"),
                 **train(name, batch, rank, world))
    np.savez(os.path.join(out, f"bn-rank{rank}.npz"), **batch_norm_step(rank, world))
'''


def load_program(path):
    spec = importlib.util.spec_from_file_location("juanji_mpi_program", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=[2, 3])  # 3 ranks oversubscribe the 2 cores of CI
def ranks_run(request, run_mpi, tmp_path_factory):
    """(program path, ranks, folder of the ranks' .npz results) of one mpiexec run."""
    folder = tmp_path_factory.mktemp(f"ranks{request.param}")
    program = folder / "program.py"
    program.write_text(PROGRAM)
    result = run_mpi(request.param, program, [folder])
    assert result.returncode == 0, result.stderr
    return program, request.param, folder


def test_ranks_train_like_one_process(ranks_run):
    program, ranks, folder = ranks_run
    reference = load_program(program)
    for name, batch in reference.CONFIGS:
        expected = reference.train(name, batch)
        states = [np.load(folder / f"{name}{batch}-rank{r}.npz") for r in range(ranks)]
        for key, value in expected.items():
            for r in range(1, ranks):  # all ranks hold bit-identical weights and buffers
                np.testing.assert_array_equal(states[r][key], states[0][key], err_msg=key)
            tolerance = 1e-5 if name == "sgd" else 1e-4
            np.testing.assert_allclose(states[0][key], value, rtol=tolerance, atol=tolerance,
                                       err_msg=f"{name}, batch {batch}, {ranks} ranks: {key}")


def test_sync_batch_norm_is_batch_norm_over_the_global_batch(ranks_run):
    program, ranks, folder = ranks_run
    expected = load_program(program).batch_norm_step()
    parts = [np.load(folder / f"bn-rank{r}.npz") for r in range(ranks)]
    for key in ("y", "x_grad"):  # each rank holds its slice of the global batch
        got = np.concatenate([p[key] for p in parts])
        np.testing.assert_allclose(got, expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    # parameter gradients: each rank's own sum; sync_gradients weights them by sample count
    sizes = [len(p["y"]) for p in parts]
    for key in ("weight_grad", "bias_grad"):
        got = sum(p[key] * n for p, n in zip(parts, sizes)) / sum(sizes)
        np.testing.assert_allclose(got, expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    for key in ("running_mean", "running_var"):
        for p in parts:
            np.testing.assert_allclose(p[key], expected[key], rtol=1e-5, atol=1e-5)
