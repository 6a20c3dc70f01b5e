"""juanji.distributed without a launcher: a world of one, no MPI; sharding arithmetic; the
SyncBatchNorm layer and DistributedDataParallel as plain wrappers."""

import os
import subprocess
import sys

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji import distributed
from juanji.distributed.world import LAUNCHER_VARS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_without_a_launcher_the_world_is_one_process_and_mpi_is_not_imported():
    code = ("import sys; from juanji import distributed as d; d.init(); d.barrier(); "
            "a = d.allreduce_sum(__import__('numpy').ones(3)); "
            "print(d.world_size(), d.rank(), d.is_main(), d.local_size(), a.sum(), "
            "'mpi4py' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "0", "True", "1", "3.0", "False"]


@pytest.mark.parametrize("n", [0, 1, 6, 7, 8, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_contiguous_cover_everything_once_and_differ_by_at_most_one(n, world):
    indices = np.random.default_rng(0).permutation(n)
    parts = [distributed.shard(indices, r, world) for r in range(world)]
    np.testing.assert_array_equal(np.concatenate(parts), indices)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first n % world ranks take one more
    np.testing.assert_array_equal(np.concatenate([distributed.shard(n, r, world)
                                                  for r in range(world)]), np.arange(n))


def test_shard_bounds_by_hand():
    assert [distributed.shard_bounds(7, r, 3) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert [distributed.shard_bounds(2, r, 3) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]


@pytest.mark.parametrize("args, message", [
    ((5, 2, 2), "rank must be in [0, world_size); got rank=2, world_size=2"),
    ((5, 0, 0), "world_size must be a positive int; got world_size=0"),
    ((-1, 0, 1), "n must be a non-negative int; got n=-1"),
    ((5, 0.5, 2), "rank must be a non-negative int; got rank=0.5"),
])
def test_shard_bounds_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError) as error:
        distributed.shard_bounds(*args)
    assert str(error.value) == message


def test_shard_rejects_a_matrix():
    with pytest.raises(ValueError, match=r"1-D sequence of indices; got shape \(2, 2\)"):
        distributed.shard(np.zeros((2, 2)), 0, 1)


def test_local_batch_slices_every_array_of_the_global_batch():
    images, labels = np.arange(7 * 2).reshape(7, 2), np.arange(7)
    x, y = distributed.local_batch((images, labels), rank=1, world_size=3)
    np.testing.assert_array_equal(x, images[3:5])
    np.testing.assert_array_equal(y, labels[3:5])
    assert isinstance(distributed.local_batch([images, labels], 0, 2), list)
    np.testing.assert_array_equal(distributed.local_batch(labels, 2, 3), labels[5:7])
    x, y = distributed.local_batch((images, labels))  # a world of one: everything
    np.testing.assert_array_equal(x, images)


def test_local_batch_rejects_arrays_of_different_lengths():
    with pytest.raises(ValueError, match=r"same first dimension; got lengths \[3, 2\]"):
        distributed.local_batch((np.zeros(3), np.zeros(2)), 0, 2)


def test_reduce_metrics_in_a_world_of_one_returns_the_totals():
    assert distributed.reduce_metrics(2.5, 3, 4) == (2.5, 3, 4)


def _bn_run(layer, x, c):
    xt = juanji.tensor(x, requires_grad=True)
    y = layer(xt)
    (y * juanji.tensor(c)).sum().backward()
    return y.data, xt.grad, layer.weight.grad, layer.bias.grad


@pytest.mark.parametrize("momentum", [0.1, None])
def test_sync_batch_norm_in_a_world_of_one_is_batch_norm(momentum):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32) + 3
    c = rng.standard_normal(x.shape).astype(np.float32)
    plain, sync = nn.BatchNorm2d(4, momentum=momentum), nn.SyncBatchNorm(4, momentum=momentum)
    for layer in (plain, sync):
        layer.weight.data[...] = [1.0, 2.0, -0.5, 0.3]
    for _ in range(2):
        for got, want in zip(_bn_run(sync, x, c), _bn_run(plain, x, c)):
            np.testing.assert_array_equal(got, want)
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(sync.state_dict()[key], value)
    sync.eval(), plain.eval()
    np.testing.assert_array_equal(sync(juanji.tensor(x)).data, plain(juanji.tensor(x)).data)


def test_sync_batch_norm_takes_inputs_of_2_to_5_dims_and_rejects_wrong_channels():
    bn = nn.SyncBatchNorm(3)
    for shape in [(4, 3), (4, 3, 5), (2, 3, 4, 5), (2, 3, 2, 2, 2)]:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        assert bn(juanji.tensor(x)).shape == shape
    with pytest.raises(ValueError, match="expects 3 channels"):
        bn(juanji.tensor(np.ones((2, 4, 3, 3), np.float32)))


def test_convert_sync_batchnorm_swaps_nested_batch_norms_and_shares_their_state():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, eps=1e-3, momentum=0.2),
                          nn.Sequential(nn.Flatten(), nn.BatchNorm1d(8, affine=False)))
    model.eval()
    bn, bn1 = model[1], model[2][1]
    before = model.state_dict()
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    assert type(model[1]) is nn.SyncBatchNorm and type(model[2][1]) is nn.SyncBatchNorm
    assert model[1].weight is bn.weight and model[1].running_mean is bn.running_mean
    assert (model[1].eps, model[1].momentum, model[1].training) == (1e-3, 0.2, False)
    assert model[2][1].weight is None and model[2][1].running_var is bn1.running_var
    assert list(model.state_dict()) == list(before)
    single = nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(3))
    assert type(single) is nn.SyncBatchNorm
    with pytest.raises(ValueError, match="process_group must be None"):
        nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group="group")


def test_ddp_in_a_world_of_one_wraps_and_leaves_gradients_alone():
    model = nn.Linear(3, 2)
    ddp = distributed.DistributedDataParallel(model)
    assert ddp.module is model
    assert list(ddp.state_dict()) == ["module.weight", "module.bias"]
    x = juanji.tensor(np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(ddp(x).data, model(x).data)
    ddp(x).sum().backward()
    grad = model.weight.grad.copy()
    assert ddp.sync_gradients(4) == 4
    np.testing.assert_array_equal(model.weight.grad, grad)


@pytest.mark.parametrize("count", [-1, 2.0, True, None])
def test_sync_gradients_rejects_a_bad_count(count):
    ddp = distributed.DistributedDataParallel(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=f"local_count must be a non-negative int; got "
                                         f"{count!r}"):
        ddp.sync_gradients(count)


def test_ddp_rejects_a_non_module():
    with pytest.raises(TypeError, match="must be a juanji.nn.Module; got function"):
        distributed.DistributedDataParallel(lambda x: x)


def test_set_timeout_rejects_a_non_positive_number():
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0; got 0"):
        distributed.set_timeout(0)


def test_mpiexec_command_runs_this_python_as_n_ranks():
    command = distributed.mpiexec_command(3, ["train.py", "--epochs", "1"], mpiexec="mpiexec")
    assert command[:3] == ["mpiexec", "-n", "3"]
    assert command[-4:] == [sys.executable, "train.py", "--epochs", "1"]
    with pytest.raises(ValueError, match="n must be a positive int"):
        distributed.mpiexec_command(0, ["train.py"], mpiexec="mpiexec")
