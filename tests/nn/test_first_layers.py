"""Issue-2 layers against PyTorch (forward and all gradients) and finite differences."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji
from juanji import nn
from juanji.nn import functional as F

rng = np.random.default_rng(1)


def r(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def compare_layer(layer, tlayer, x, atol=1e-5):
    """Same weights: forward, input grad and parameter grads equal torch's."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    tlayer.load_state_dict(state)
    jx, tx = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    jy, ty = layer(jx), tlayer(tx)
    assert_close(jy, ty, atol=atol, msg="forward")
    upstream = r(*ty.shape)
    jy.backward(upstream)
    ty.backward(torch.from_numpy(upstream))
    assert_close(jx.grad, tx.grad, atol=atol, msg="input grad")
    for (name, p), (_, tp) in zip(layer.named_parameters(), tlayer.named_parameters()):
        assert_close(p.grad, tp.grad, atol=atol, rtol=1e-4, msg=f"{name} grad")


CONV_GRID = [
    # (N, C, H, W), OC, kernel, stride, padding, dilation, groups, bias
    ((2, 3, 9, 9), 4, 3, 1, 0, 1, 1, True),
    ((1, 3, 7, 11), 6, (3, 2), (2, 1), (1, 2), 1, 3, True),  # odd sizes, grouped, asymmetric
    ((2, 4, 10, 8), 4, 3, 2, 1, 2, 4, False),  # depthwise, dilated, strided
    ((2, 2, 8, 8), 6, 1, 1, 0, 1, 1, True),  # 1x1
    ((1, 2, 9, 9), 3, 2, 3, 0, 1, 1, True),  # stride > kernel
    ((2, 4, 6, 6), 8, 3, 1, "same", 1, 2, True),  # depth multiplier 4 per group, 'same'
    ((2, 1, 6, 7), 2, 5, 1, "same", 1, 1, True),
    ((1, 2, 5, 5), 2, 3, 1, "valid", 2, 1, True),
]


@pytest.mark.parametrize("shape,oc,k,s,p,d,g,bias", CONV_GRID)
def test_conv2d_matches_torch(shape, oc, k, s, p, d, g, bias):
    layer = nn.Conv2d(shape[1], oc, k, s, p, d, g, bias)
    tlayer = torch.nn.Conv2d(shape[1], oc, k, s, p, d, g, bias)
    compare_layer(layer, tlayer, r(*shape))


@pytest.mark.parametrize("shape,oc,k,s,p,d,g,bias", CONV_GRID[:4])
def test_conv2d_gradcheck(shape, oc, k, s, p, d, g, bias):
    n, c = shape[:2]
    shape = (n, c, min(shape[2], 7), min(shape[3], 7))
    kh, kw = (k, k) if isinstance(k, int) else k
    x, w = r(*shape, dtype=np.float64), r(oc, c // g, kh, kw, dtype=np.float64)
    b = r(oc, dtype=np.float64)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), [x, w, b])


POOL_GRID = [
    # (N, C, H, W), kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((1, 2, 7, 9), 3, 2, 1, 1, False),
    ((2, 2, 7, 7), 3, 2, 1, 1, True),
    ((1, 1, 6, 6), 3, 2, 0, 1, True),  # last ceil window would start in padding: dropped
    ((1, 2, 5, 8), (2, 3), (1, 2), (1, 0), 1, True),
    ((2, 2, 9, 9), 2, 3, 0, 1, False),  # stride > kernel
    ((1, 2, 9, 9), 3, 1, 1, 2, False),  # dilation (max only)
]


@pytest.mark.parametrize("shape,k,s,p,d,ceil", POOL_GRID)
def test_max_pool2d_matches_torch(shape, k, s, p, d, ceil):
    compare_layer(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil),
                  torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil), r(*shape))


@pytest.mark.parametrize("shape,k,s,p,d,ceil", [g for g in POOL_GRID if g[4] == 1])
@pytest.mark.parametrize("include_pad", [True, False])
def test_avg_pool2d_matches_torch(shape, k, s, p, d, ceil, include_pad):
    compare_layer(nn.AvgPool2d(k, s, p, ceil, include_pad),
                  torch.nn.AvgPool2d(k, s, p, ceil, include_pad), r(*shape))


def test_pool_gradchecks():
    x = r(2, 2, 7, 7, dtype=np.float64)
    gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [x])
    gradcheck(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [x])


def test_max_pool_indices_match_torch():
    x = r(2, 3, 7, 7)
    out, idx = F.max_pool2d(juanji.tensor(x), 3, 2, 1, return_indices=True)
    tout, tidx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(idx.data, tidx.numpy())


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (1, 5)])
def test_linear_matches_torch(shape):
    compare_layer(nn.Linear(5, 3), torch.nn.Linear(5, 3), r(*shape))
    compare_layer(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False), r(*shape))


def test_linear_gradcheck():
    gradcheck(F.linear, [r(4, 5, dtype=np.float64), r(3, 5, dtype=np.float64),
                         r(3, dtype=np.float64)])


@pytest.mark.parametrize("name", ["ReLU", "Sigmoid", "Tanh", "Flatten", "Identity"])
def test_simple_layers_match_torch(name):
    compare_layer(getattr(nn, name)(), getattr(torch.nn, name)(), r(2, 3, 4, 5) * 4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    x, y = r(6, 5) * 3, rng.integers(0, 5, 6)
    weight = np.abs(r(5)) + 0.1
    for w in (None, weight):
        jx, tx = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
        jl = F.cross_entropy(jx, y, weight=w, reduction=reduction)
        tl = torch.nn.functional.cross_entropy(
            tx, torch.from_numpy(y), weight=None if w is None else torch.from_numpy(w),
            reduction=reduction)
        assert_close(jl, tl)
        upstream = r(*tl.shape)
        jl.backward(upstream)
        tl.backward(torch.from_numpy(upstream))
        assert_close(jx.grad, tx.grad)


def test_cross_entropy_stable_for_huge_logits_and_gradcheck():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=np.float32)
    y = np.array([1, 1])
    loss = F.cross_entropy(juanji.tensor(x), y)
    tloss = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y))
    assert np.isfinite(loss.item())
    assert_close(loss, tloss)
    gradcheck(lambda x: F.cross_entropy(x, y), [r(2, 3, dtype=np.float64)])


def test_dropout_train_eval_and_expectation():
    layer = nn.Dropout(0.25)
    x = np.ones((200, 200), dtype=np.float32)
    y = layer(juanji.tensor(x)).data
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    layer.eval()
    np.testing.assert_array_equal(layer(juanji.tensor(x)).data, x)


def test_state_dict_round_trip_and_torch_keys():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 3))
    assert list(model.state_dict()) == list(tmodel.state_dict())
    result = model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = r(2, 1, 4, 4)
    assert_close(model(juanji.tensor(x)), tmodel(torch.from_numpy(x)))
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({"0.weight": np.zeros((2, 1, 3, 3))})
    with pytest.raises(ValueError, match="size mismatch for 3.weight"):
        bad = dict(model.state_dict())
        bad["3.weight"] = np.zeros((3, 9))
        model.load_state_dict(bad)


def test_train_eval_flags_and_parameter_walk():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.Linear(2, 1)))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.1.weight",
                                                        "1.1.bias"]
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_shared_parameters_counted_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2


def test_default_init_matches_torch_bounds():
    layer = nn.Conv2d(16, 8, 3)
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.9 * bound
    assert np.abs(layer.bias.data).max() <= bound


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv2d(3, 4, 3, stride=0), "stride must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), "padding must be >= 0"),
    (lambda: nn.Conv2d(6, 4, 3, groups=4), "groups must divide in_channels"),
    (lambda: nn.Conv2d(3, 4, 3, dilation=0), "dilation must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: nn.MaxPool2d(2, padding=2), "padding should be at most half"),
    (lambda: nn.Dropout(1.5), "p must be a probability"),
    (lambda: nn.Linear(0, 3), "in_features must be >= 1"),
])
def test_bad_arguments_are_refused_with_the_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs_are_refused_with_the_shape():
    conv = nn.Conv2d(3, 4, 5)
    with pytest.raises(ValueError, match="kernel height 5 .* larger than the padded input"):
        conv(juanji.tensor(r(1, 3, 4, 8)))
    with pytest.raises(ValueError, match=r"expects a \(N, C, H, W\)"):
        conv(juanji.tensor(r(8, 8)))
    with pytest.raises(ValueError, match="input channels"):
        conv(juanji.tensor(r(1, 2, 8, 8)))
    with pytest.raises(ValueError, match=r"target values must be in \[0, 4\]"):
        F.cross_entropy(juanji.tensor(r(2, 5)), np.array([0, 5]))
    with pytest.raises(ValueError, match="features"):
        nn.Linear(4, 2)(juanji.tensor(r(3, 5)))


def test_skip_init_leaves_weights_unfilled_and_then_initialises_again():
    from juanji.nn import init

    t = juanji.tensor(np.full((3, 4), 7.0, dtype=np.float32))
    with init.skip_init():
        init.kaiming_uniform_(t)
        init.normal_(t)
    assert (t.data == 7.0).all()
    init.kaiming_uniform_(t)
    assert not (t.data == 7.0).any()
