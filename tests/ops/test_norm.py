"""Normalisation: BatchNorm1d/2d (train and eval, running statistics), LayerNorm, GroupNorm,
LocalResponseNorm against PyTorch (float32, same weights) and float64 gradient checks."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops.norm import BatchNorm


def _randn(shape, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def _copy_to_torch(module, ref):
    ref.load_state_dict({k: torch.tensor(np.array(v)) for k, v in module.state_dict().items()})


def _randomize(module, seed=1):
    """Non-trivial affine parameters, so weight/bias mistakes show."""
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)


def _step(module, ref, x, seed):
    """One forward + backward with a random upstream on both; compare outputs and grads."""
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    yj, yt = module(xj), ref(xt)
    assert_close(yj, yt, msg="forward")
    g = np.random.default_rng(seed).standard_normal(yj.shape).astype(np.float32)
    (yj * juanji.tensor(g)).sum().backward()
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad, msg="input gradient")
    for (name, p), (_, q) in zip(module.named_parameters(), ref.named_parameters()):
        assert_close(p.grad, q.grad, msg=f"{name} gradient")
        p.grad = q.grad = None


# ---- BatchNorm -------------------------------------------------------------------------------
BN_CASES = [
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 5), {}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (1, 2, 3, 3), {}),  # batch 1, spatial > 1
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (7, 5, 1, 1), {"eps": 1e-3, "momentum": 0.3}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 2, 5), {"momentum": None}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 2, 5), {"affine": False}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 2, 5), {"bias": False}),
    (nn.BatchNorm2d, torch.nn.BatchNorm2d, (3, 4, 2, 5), {"track_running_stats": False}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 4), {}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (5, 3, 7), {"momentum": None}),
    (nn.BatchNorm1d, torch.nn.BatchNorm1d, (2, 3), {"affine": False, "momentum": 0.5}),
]


@pytest.mark.parametrize("cls,ref_cls,shape,kwargs", BN_CASES)
def test_batchnorm_train_then_eval_matches_torch(cls, ref_cls, shape, kwargs):
    c = shape[1]
    module, ref = cls(c, **kwargs), ref_cls(c, **kwargs)
    _randomize(module)
    _copy_to_torch(module, ref)
    for step in range(3):  # three training batches move the running statistics
        _step(module, ref, _randn(shape, seed=10 + step, scale=2.0, shift=step), seed=step)
        for key, value in ref.state_dict().items():
            assert_close(module.state_dict()[key], value, 1e-5, 1e-6, key)
    module.eval()
    ref.eval()
    _step(module, ref, _randn(shape, seed=20, scale=3.0), seed=5)


def test_batchnorm_state_dict_names_and_types_are_pytorchs():
    bn = nn.BatchNorm2d(3)
    ref = torch.nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == list(ref.state_dict())
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(3, track_running_stats=False).state_dict()) == ["weight", "bias"]
    trained = torch.nn.BatchNorm2d(3)
    trained(torch.randn(4, 3, 2, 2) * 3 + 1)
    bn.load_state_dict(trained.state_dict())
    assert bn.num_batches_tracked.data == 1
    np.testing.assert_allclose(bn.running_var.data, trained.running_var.numpy())


def test_batchnorm_running_var_is_unbiased_and_momentum_none_is_cumulative():
    bn = nn.BatchNorm1d(1, momentum=None, affine=False)
    batches = [np.array([[1.0], [3.0]], np.float32), np.array([[0.0], [4.0], [8.0]], np.float32)]
    for b in batches:
        bn(juanji.tensor(b))
    # cumulative average of the batch means and of the unbiased batch variances
    np.testing.assert_allclose(bn.running_mean.data, [(2.0 + 4.0) / 2])
    np.testing.assert_allclose(bn.running_var.data, [(2.0 + 16.0) / 2])
    assert int(bn.num_batches_tracked.data) == 2


def test_batchnorm_normalises_with_biased_batch_variance():
    x = np.array([[1.0], [3.0]], np.float32)  # mean 2, biased var 1
    y = F.batch_norm(juanji.tensor(x), None, None, training=True, eps=0.0 + 1e-12)
    np.testing.assert_allclose(y.data, [[-1.0], [1.0]], rtol=1e-6)


def test_batchnorm_eval_without_running_stats_uses_batch_statistics():
    bn = nn.BatchNorm2d(2, track_running_stats=False).eval()
    x = _randn((3, 2, 2, 2), seed=3, scale=5, shift=2)
    y = bn(juanji.tensor(x)).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradcheck(training):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2, 3))
    w, b = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.uniform(0.5, 2, 2)

    def f(x, w, b):
        return F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)

    gradcheck(f, [x, w, b])


def test_batchnorm_gradcheck_1d_without_affine():
    x = np.random.default_rng(5).standard_normal((5, 3))
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])


def _batchnorm_float64_reference(x, w, b, gy):
    """Training batch norm and its gradients by the textbook formulas in float64: the
    unfused reference for the one-read kernels (channel_moments, channel_grad_sums)."""
    x, w, b, gy = (np.asarray(a, np.float64) for a in (x, w, b, gy))
    axes, shape = (0, 2, 3), (1, -1, 1, 1)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + 1e-5)
    dxhat = gy * w.reshape(shape)
    gx = (dxhat - dxhat.mean(axis=axes, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)) / np.sqrt(var + 1e-5)
    return (xhat * w.reshape(shape) + b.reshape(shape), gx, (gy * xhat).sum(axis=axes),
            gy.sum(axis=axes), mean.ravel(), var.ravel())


@pytest.mark.parametrize("shift", [0.0, 300.0])
@pytest.mark.parametrize("channels_last", [True, False])
def test_batchnorm_training_matches_the_float64_reference_to_float32_rounding(shift,
                                                                             channels_last):
    """Many row blocks (threads), one read of x for both statistics, x centred block by block in
    backward: still float32 rounding of the exact result, also when the mean is 300 standard
    deviations from zero."""
    x = _randn((64, 8, 48, 48), seed=11, shift=shift)  # 4.7 MB: three row blocks
    x += np.linspace(-3, 3, 64, dtype=np.float32)[:, None, None, None]  # blocks' means differ
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    rng = np.random.default_rng(12)
    w, b = rng.uniform(0.5, 2, 8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    xj = juanji.tensor(x, requires_grad=True)
    wj, bj = juanji.tensor(w, requires_grad=True), juanji.tensor(b, requires_grad=True)
    fn = BatchNorm()
    y = fn.run(xj, wj, bj, training=True)
    batch_mean, batch_var = fn.batch_mean, fn.batch_var  # backward releases the op
    y.backward(gy)
    ref_y, ref_gx, ref_gw, ref_gb, ref_mean, ref_var = _batchnorm_float64_reference(x, w, b, gy)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(batch_mean, ref_mean, rtol=4 * eps, atol=0)
    np.testing.assert_allclose(batch_var, ref_var, rtol=64 * eps)
    # y = x * scale + shift: the rounding of the two products, each up to |x| * scale
    scale = w / np.sqrt(ref_var + 1e-5)
    np.testing.assert_allclose(y.data, ref_y, rtol=0,
                               atol=4 * eps * float((np.abs(x).max() + abs(shift)) * scale.max()))
    # float32 sums of `count` terms: a few eps of the sum of the terms' magnitudes
    xhat = (ref_y - b.reshape(1, -1, 1, 1)) / w.reshape(1, -1, 1, 1)
    np.testing.assert_array_less(np.abs(wj.grad - ref_gw),
                                 8 * eps * np.abs(gy * xhat).sum(axis=(0, 2, 3)))
    np.testing.assert_array_less(np.abs(bj.grad - ref_gb), 8 * eps * np.abs(gy).sum(axis=(0, 2, 3)))
    np.testing.assert_allclose(xj.grad, ref_gx, rtol=0, atol=64 * eps * float(
        np.abs(ref_gx).max()))


def test_batchnorm_training_does_not_depend_on_the_thread_count():
    x = juanji.tensor(_randn((64, 8, 48, 48), seed=13, shift=2.0), requires_grad=True)
    gy = _randn(x.shape, seed=14)
    results = []
    for threads in (1, 3):
        juanji.set_num_threads(threads)
        try:
            x.grad = None
            y = F.batch_norm(x, None, None, training=True)
            y.backward(gy)
            results.append((y.data.copy(), x.grad.copy()))
        finally:
            juanji.set_num_threads(2)
    for one, three in zip(*results):
        assert np.array_equal(one, three)


def test_batchnorm_constant_channel_is_finite_and_matches_torch():
    x = _randn((4, 3, 3, 3), seed=6)
    x[:, 1] = 0.7  # one constant channel: variance 0, output 0 (bias), gradient finite
    x[:, 2] = 0.0
    module, ref = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    _randomize(module)
    _copy_to_torch(module, ref)
    xj = juanji.tensor(x, requires_grad=True)
    y = module(xj)
    y.sum().backward()
    assert np.isfinite(y.data).all() and np.isfinite(xj.grad).all()
    module.zero_grad()
    _step(module, ref, x, seed=7)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, "
                                         r"got input size \[1, 3\]"):
        nn.BatchNorm1d(3)(juanji.tensor(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match=r"got input size \[1, 3, 1, 1\]"):
        nn.BatchNorm2d(3)(juanji.tensor(np.ones((1, 3, 1, 1), np.float32)))
    nn.BatchNorm1d(3).eval()(juanji.tensor(np.ones((1, 3), np.float32)))  # fine in eval
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(2, 3\)"):
        nn.BatchNorm2d(3)(juanji.tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\)"):
        nn.BatchNorm1d(3)(juanji.tensor(np.ones((2, 3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="expects 4 channels"):
        nn.BatchNorm2d(4)(juanji.tensor(np.ones((2, 3, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(3, eps=0)


def test_batchnorm_double_keeps_float64():
    bn = nn.BatchNorm2d(2).double()
    y = bn(juanji.tensor(np.random.default_rng(0).standard_normal((2, 2, 2, 2))))
    assert y.dtype == np.float64 and bn.running_mean.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64


# ---- LayerNorm -------------------------------------------------------------------------------
LN_CASES = [((4, 6), 6, {}), ((2, 3, 5), (3, 5), {}), ((2, 3, 4, 4), (4, 4), {"eps": 1e-3}),
            ((3, 7), [7], {"elementwise_affine": False}), ((2, 5, 3), 3, {"bias": False}),
            ((5,), 5, {})]


@pytest.mark.parametrize("shape,normalized,kwargs", LN_CASES)
def test_layernorm_matches_torch(shape, normalized, kwargs):
    module, ref = nn.LayerNorm(normalized, **kwargs), torch.nn.LayerNorm(normalized, **kwargs)
    _randomize(module)
    _copy_to_torch(module, ref)
    assert list(module.state_dict()) == list(ref.state_dict())
    _step(module, ref, _randn(shape, seed=8, scale=3, shift=1), seed=9)


def test_layernorm_gradcheck():
    rng = np.random.default_rng(10)
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4)), rng.standard_normal(
        (2, 4))
    gradcheck(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), [x, w, b])
    gradcheck(lambda x: F.layer_norm(x, 4), [x])


def test_layernorm_errors():
    with pytest.raises(ValueError, match=r"\[\*, 3\].*\[2, 4\]"):
        nn.LayerNorm(3)(juanji.tensor(np.ones((2, 4), np.float32)))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)


# ---- GroupNorm -------------------------------------------------------------------------------
GN_CASES = [(2, 6, (3, 6, 4, 4), {}), (1, 4, (2, 4, 3, 3), {}), (4, 4, (2, 4, 3, 5), {}),
            (3, 6, (2, 6, 7), {"eps": 1e-3}), (2, 4, (1, 4, 2, 2), {"affine": False}),
            (2, 4, (3, 4), {})]


@pytest.mark.parametrize("groups,channels,shape,kwargs", GN_CASES)
def test_groupnorm_matches_torch(groups, channels, shape, kwargs):
    module = nn.GroupNorm(groups, channels, **kwargs)
    ref = torch.nn.GroupNorm(groups, channels, **kwargs)
    _randomize(module)
    _copy_to_torch(module, ref)
    _step(module, ref, _randn(shape, seed=11, scale=2, shift=-1), seed=12)


def test_groupnorm_gradcheck():
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal((2, 4, 2, 3)), rng.standard_normal(4), rng.standard_normal(4)
    gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, w, b])


def test_groupnorm_errors():
    with pytest.raises(ValueError, match="num_channels=6, num_groups=4"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups=4"):
        F.group_norm(juanji.tensor(np.ones((2, 6, 2, 2), np.float32)), 4)
    with pytest.raises(ValueError, match=r"\(N, 4, \*\)"):
        nn.GroupNorm(2, 4)(juanji.tensor(np.ones((2, 6, 2, 2), np.float32)))


# ---- LocalResponseNorm -----------------------------------------------------------------------
LRN_CASES = [
    (5, {}, (2, 7, 4, 4)),
    (5, {"alpha": 1e-4, "beta": 0.75, "k": 2.0}, (2, 96, 3, 3)),  # AlexNet's setting
    (3, {"alpha": 0.5, "beta": 0.6, "k": 1.5}, (3, 4, 5)),
    (4, {"alpha": 0.3}, (2, 6, 3, 3)),  # even size: the window is off-centre
    (2, {"alpha": 0.2, "beta": 1.1}, (2, 5, 2, 2, 2)),
    (1, {"alpha": 0.4}, (2, 3, 4)),
    (9, {"alpha": 0.1}, (1, 4, 2, 2)),  # window wider than the channels
]


@pytest.mark.parametrize("size,kwargs,shape", LRN_CASES)
def test_local_response_norm_matches_torch(size, kwargs, shape):
    module = nn.LocalResponseNorm(size, **kwargs)
    ref = torch.nn.LocalResponseNorm(size, **kwargs)
    _step(module, ref, _randn(shape, seed=14, scale=3), seed=15)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_local_response_norm_gradcheck(size):
    x = np.random.default_rng(16).standard_normal((2, 5, 2, 2))
    gradcheck(lambda t: F.local_response_norm(t, size, alpha=0.5, beta=0.7, k=1.3), [x])


def test_local_response_norm_by_hand():
    x = np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 3, 1)
    y = F.local_response_norm(juanji.tensor(x), 2, alpha=1.0, beta=1.0, k=1.0).data.ravel()
    # size 2: channel c sees c-1 and c (zero padded); divisor = 1 + (sum of squares) / 2
    np.testing.assert_allclose(y, [1 / 1.5, 2 / 3.5, 3 / 7.5], rtol=1e-6)


def test_local_response_norm_errors():
    with pytest.raises(ValueError, match="3 or more dims"):
        F.local_response_norm(juanji.tensor(np.ones((2, 3), np.float32)), 2)
    with pytest.raises(ValueError, match="size"):
        nn.LocalResponseNorm(0)
