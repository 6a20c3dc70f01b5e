"""Activations: float64 gradient checks, PyTorch parity (forward and backward, float32) over a
parameter grid, PyTorch's gradients at the kinks, erf accuracy, softmax stability."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops.activation import erf

# Points where the derivative has a kink or a branch switch, plus far tails.
KINKS = np.array([-1e4, -20.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0, 20.0, 1e4], dtype=np.float32)


def _input(shape=(3, 4, 5), seed=0, scale=3.0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale
    flat = x.reshape(-1)
    k = min(len(KINKS), flat.size)
    flat[:k] = KINKS[:k]
    return x


def _parity(jfn, tfn, x, rtol=1e-5, atol=1e-6):
    """Forward and backward (random upstream) of jfn and tfn agree on float32 input x."""
    xj = juanji.tensor(x, requires_grad=True)
    xt = to_torch(x, requires_grad=True)
    yj, yt = jfn(xj), tfn(xt)
    assert yj.dtype == np.float32
    assert_close(yj, yt, rtol, atol, "forward")
    g = np.random.default_rng(1).standard_normal(yj.shape).astype(np.float32)
    (yj * juanji.tensor(g)).sum().backward()
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad, rtol, atol, "input gradient")


def _smooth_input(kinks=(0.0,), shape=(3, 4), seed=2):
    """float64 input kept at least 1e-2 away from every kink (finite differences need that)."""
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    for k in kinks:
        close = np.abs(x - k) < 1e-2
        x[close] += 0.05
    return x


POINTWISE = [
    ("relu", F.relu, TF.relu, (0.0,)),
    ("relu6", F.relu6, TF.relu6, (0.0, 6.0)),
    ("hardtanh", lambda x: F.hardtanh(x, -2.0, 1.5), lambda x: TF.hardtanh(x, -2.0, 1.5),
     (-2.0, 1.5)),
    ("leaky_relu", F.leaky_relu, TF.leaky_relu, (0.0,)),
    ("leaky_relu_0.2", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), (0.0,)),
    ("leaky_relu_neg", lambda x: F.leaky_relu(x, -0.5), lambda x: TF.leaky_relu(x, -0.5),
     (0.0,)),
    ("elu", F.elu, TF.elu, (0.0,)),
    ("elu_0.5", lambda x: F.elu(x, 0.5), lambda x: TF.elu(x, 0.5), (0.0,)),
    ("elu_2", lambda x: F.elu(x, 2.0), lambda x: TF.elu(x, 2.0), (0.0,)),
    ("selu", F.selu, TF.selu, (0.0,)),
    ("gelu", F.gelu, TF.gelu, ()),
    ("gelu_tanh", lambda x: F.gelu(x, "tanh"), lambda x: TF.gelu(x, approximate="tanh"), ()),
    ("silu", F.silu, TF.silu, ()),
    ("hardswish", F.hardswish, TF.hardswish, (-3.0, 3.0)),
    ("hardsigmoid", F.hardsigmoid, TF.hardsigmoid, (-3.0, 3.0)),
    ("softplus", F.softplus, TF.softplus, (20.0,)),
    ("softplus_b2_t5", lambda x: F.softplus(x, 2.0, 5.0), lambda x: TF.softplus(x, 2.0, 5.0),
     (2.5,)),
    ("softplus_b0.5_t1", lambda x: F.softplus(x, 0.5, 1.0), lambda x: TF.softplus(x, 0.5, 1.0),
     (2.0,)),
    ("sigmoid", F.sigmoid, torch.sigmoid, ()),
    ("tanh", F.tanh, torch.tanh, ()),
]


@pytest.mark.parametrize("name,jfn,tfn,kinks", POINTWISE, ids=[p[0] for p in POINTWISE])
def test_pointwise_matches_torch_including_kinks(name, jfn, tfn, kinks):
    _parity(jfn, tfn, _input())


@pytest.mark.parametrize("name,jfn,tfn,kinks", POINTWISE, ids=[p[0] for p in POINTWISE])
def test_pointwise_gradcheck(name, jfn, tfn, kinks):
    gradcheck(jfn, [_smooth_input(kinks)])


def test_kink_gradients_are_pytorchs():
    """The exact one-sided choices, written out (not only compared with torch)."""
    x = juanji.tensor(np.array([-3.0, 0.0, 3.0, 6.0], dtype=np.float32), requires_grad=True)

    def grad(fn):
        x.grad = None
        fn(x).sum().backward()
        return x.grad.tolist()

    assert grad(F.relu) == [0, 0, 1, 1]
    assert grad(F.relu6) == [0, 0, 1, 0]
    assert grad(F.hardswish) == [0, 0.5, 1, 1]
    assert grad(F.hardsigmoid) == pytest.approx([0, 1 / 6, 0, 0])
    assert grad(lambda t: F.leaky_relu(t, 0.1)) == pytest.approx([0.1, 0.1, 1, 1])
    assert grad(lambda t: F.elu(t, 2.0))[1] == 2.0  # negative branch at 0: alpha * e^0


def test_gelu_approximations_differ_and_tanh_is_not_erf():
    x = juanji.tensor(np.linspace(-4, 4, 101).astype(np.float32))
    exact, approx = F.gelu(x).data, F.gelu(x, "tanh").data
    assert 1e-5 < np.abs(exact - approx).max() < 1e-2


def test_activation_keeps_float64():
    x = juanji.tensor(np.linspace(-3, 3, 7))
    for fn in (F.gelu, F.silu, F.selu, F.hardswish, F.softplus, F.relu6):
        assert fn(x).dtype == np.float64


# ---- erf -------------------------------------------------------------------------------------
def test_erf_float64_matches_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 1e-300, -1e-8, 1.99999999, 2.0]])
    ref = np.array([math.erf(v) for v in x])
    got = erf(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=2e-15, atol=1e-300)


def test_erf_float32_is_within_one_ulp():
    x = np.linspace(-6, 6, 20001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    got = erf(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1.2e-7, atol=1e-30)  # <= 1 ulp


def test_erf_is_odd_and_saturates():
    x = np.array([-30.0, -6.0, 6.0, 30.0, np.inf, -np.inf])
    assert erf(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    x = np.random.default_rng(0).standard_normal(100) * 3
    np.testing.assert_array_equal(erf(-x), -erf(x))


# ---- PReLU -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,count", [((4, 3, 5, 5), 3), ((4, 3, 5, 5), 1), ((6, 7), 7),
                                         ((2, 3, 4), 3), ((9,), 1), ((1, 2, 3, 3), 2)])
def test_prelu_matches_torch_with_weight_grad(shape, count):
    x = _input(shape)
    w = np.random.default_rng(3).uniform(-0.5, 0.5, count).astype(np.float32)
    xj, wj = juanji.tensor(x, requires_grad=True), juanji.tensor(w, requires_grad=True)
    xt, wt = to_torch(x, True), to_torch(w, True)
    yj, yt = F.prelu(xj, wj), TF.prelu(xt, wt)
    assert_close(yj, yt)
    g = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    (yj * juanji.tensor(g)).sum().backward()
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad, msg="input grad")
    assert_close(wj.grad, wt.grad, msg="weight grad")


def test_prelu_gradcheck_input_and_weight():
    x = _smooth_input(shape=(2, 3, 2, 2))
    w = np.array([0.25, -0.5, 1.5])
    gradcheck(F.prelu, [x, w])


def test_prelu_layer_defaults_and_state_dict():
    layer = nn.PReLU(4, init=0.1)
    assert list(layer.state_dict()) == ["weight"]
    np.testing.assert_array_equal(layer.weight.data, np.full(4, 0.1, dtype=np.float32))
    assert nn.PReLU().weight.data.tolist() == [0.25]
    with pytest.raises(ValueError, match="1 or 3"):
        F.prelu(juanji.tensor(np.ones((2, 3, 4), dtype=np.float32)), juanji.tensor(np.ones(2)))


# ---- softmax family --------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -3])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_matches_torch(name, dim):
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    _parity(lambda t: getattr(F, name)(t, dim), lambda t: getattr(TF, name)(t, dim), x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_gradcheck(name):
    x = np.random.default_rng(5).standard_normal((3, 4))
    for dim in (0, 1):
        gradcheck(lambda t, d=dim: getattr(F, name)(t, d), [x])


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_stable_for_logits_of_magnitude_1e4(name):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4 + 2, -1e4, -1e4]], dtype=np.float32)
    _parity(lambda t: getattr(F, name)(t, 1), lambda t: getattr(TF, name)(t, 1), x)
    y = getattr(F, name)(juanji.tensor(x), 1).data
    assert np.isfinite(y).all()


def test_softmax_layers_and_implicit_dim():
    x = juanji.tensor(np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32))
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).data.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(nn.LogSoftmax(dim=0)(x).data).sum(0), 1, rtol=1e-6)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = nn.Softmax()(x)  # rank 2 -> dim 1, as PyTorch's legacy rule
    np.testing.assert_allclose(y.data.sum(1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        F.softmax(x, 2)


# ---- layers ----------------------------------------------------------------------------------
LAYERS = [
    (nn.ReLU(), torch.nn.ReLU()), (nn.ReLU(inplace=True), torch.nn.ReLU()),
    (nn.ReLU6(), torch.nn.ReLU6()), (nn.Hardtanh(-2, 2), torch.nn.Hardtanh(-2, 2)),
    (nn.LeakyReLU(0.3), torch.nn.LeakyReLU(0.3)), (nn.ELU(0.7), torch.nn.ELU(0.7)),
    (nn.SELU(), torch.nn.SELU()), (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.SiLU(), torch.nn.SiLU()),
    (nn.Hardswish(), torch.nn.Hardswish()), (nn.Hardsigmoid(), torch.nn.Hardsigmoid()),
    (nn.Softplus(2.0, 3.0), torch.nn.Softplus(2.0, 3.0)), (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()), (nn.Softmax(1), torch.nn.Softmax(1)),
    (nn.LogSoftmax(-1), torch.nn.LogSoftmax(-1)),
]


@pytest.mark.parametrize("layer,ref", LAYERS, ids=[type(p[0]).__name__ for p in LAYERS])
def test_layers_match_torch_modules(layer, ref):
    x = _input((2, 3, 4, 4), seed=7)
    _parity(layer, ref, x)
    assert layer.state_dict() == {} and list(layer.parameters()) == []


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _special_values(shape, dtype, layout):
    x = _input(shape).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, -0.0, -np.inf, np.inf]
    if layout == "channels_last":  # an NCHW view of NHWC memory, what a conv returns
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_relu_inplace_under_no_grad_writes_over_its_input(dtype, layout):
    # PyTorch's relu_: the input's memory holds the result, bit for bit the new-array result
    x = _special_values((2, 3, 5, 7), dtype, layout)
    want = F.relu(juanji.tensor(x.copy())).data
    xj = juanji.Tensor(x)
    with juanji.no_grad():
        y = nn.ReLU(inplace=True)(xj)
    assert np.shares_memory(y.data, x) and xj.data is x
    np.testing.assert_array_equal(_bits(x), _bits(want))  # NaN kept, -0.0 became +0.0
    assert np.isnan(want).any() and (want == 0).any() and not np.signbit(want).any()
    np.testing.assert_array_equal(y.data, want)


def test_relu_inplace_with_gradients_on_or_read_only_input_makes_a_new_tensor():
    x = _special_values((2, 3, 4, 4), np.float32, "nchw")
    kept = x.copy()
    xj = juanji.tensor(x, requires_grad=True)
    y = F.relu(xj, inplace=True)  # gradients on: x may be kept for a backward
    np.testing.assert_array_equal(xj.data.view(np.uint8), kept.view(np.uint8))
    y.sum().backward()
    np.testing.assert_array_equal(xj.grad, (kept > 0).astype(np.float32))
    read_only = kept.copy()
    read_only.flags.writeable = False
    with juanji.no_grad():
        y = F.relu(juanji.Tensor(read_only), inplace=True)
    assert not np.shares_memory(y.data, read_only)
    np.testing.assert_array_equal(read_only.view(np.uint8), kept.view(np.uint8))
    with juanji.no_grad():  # inplace=False never writes over its input
        F.relu(juanji.Tensor(x))
    np.testing.assert_array_equal(x.view(np.uint8), kept.view(np.uint8))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="min_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="beta"):
        nn.Softplus(beta=0)
    with pytest.raises(ValueError, match="num_parameters"):
        nn.PReLU(0)
    with pytest.raises(ValueError, match="negative_slope"):
        F.leaky_relu(juanji.tensor([1.0]), "0.1")
