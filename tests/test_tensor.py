"""The engine: autograd mechanics, every Tensor op by finite differences and against PyTorch."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji
from juanji.function import unbroadcast

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape)


# ---- gradients of every op, float64 central differences with a random upstream ----------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "matmul": lambda a, b: a @ b,
    "maximum": lambda a, b: a.maximum(b),
}
# Elementwise ops broadcast NumPy-style; matmul multiplies the last two axes and broadcasts the
# batch axes before them (its 1-D operands: test_matmul_gradcheck_of_one_dimensional_operands).
ELEMENTWISE_SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 4))]
MATMUL_SHAPES_2D_UP = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((3, 1, 2, 4), (5, 4, 3))]
BINARY_CASES = [(name, shapes) for name in sorted(BINARY) if name != "matmul"
                for shapes in ELEMENTWISE_SHAPES]
BINARY_CASES += [("matmul", shapes) for shapes in MATMUL_SHAPES_2D_UP]


@pytest.mark.parametrize("name, shapes", BINARY_CASES)
def test_binary_gradients_with_broadcasting(name, shapes):
    gradcheck(BINARY[name], [r(*shapes[0]), r(*shapes[1])])


UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: x.exp(),
    "erf": lambda x: x.erf(),
    "log": lambda x: (x * x + 0.5).log(),
    "sqrt": lambda x: (x * x + 0.5).sqrt(),
    "abs": lambda x: x.abs(),
    "pow": lambda x: x**3,
    "clamp": lambda x: x.clamp(-0.5, 0.7),
    "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(),
    "tanh": lambda x: x.tanh(),
    "sum_axis": lambda x: x.sum(1),
    "sum_keep": lambda x: x.sum((0, 2), keepdim=True),
    "mean": lambda x: x.mean(-1),
    "max": lambda x: x.max(1),
    "min": lambda x: x.min(),
    "var": lambda x: x.var(2),
    "var_biased": lambda x: x.var((0, 1), correction=0),
    "std": lambda x: x.std(1),
    "reshape": lambda x: x.reshape(6, 4) * 2,
    "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 2),
    "T": lambda x: x.T,
    "flatten": lambda x: x.flatten(1),
    "unsqueeze": lambda x: x.unsqueeze(1).squeeze(1),
    "expand": lambda x: x[:, :1].expand(2, 5, 4),
    "slice": lambda x: x[:, 1:, ::2],
    "fancy_index": lambda x: x[np.array([0, 1, 0]), 2],
    "bool_mask": lambda x: x[x.data > 0],
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name):
    gradcheck(UNARY[name], [r(2, 3, 4)])


def test_concat_stack_pad_gradients():
    from juanji.ops.movement import Concat, Pad, Stack

    gradcheck(lambda a, b: Concat.apply(a, b, axis=1), [r(2, 3), r(2, 5)])
    gradcheck(lambda a, b: Stack.apply(a, b, axis=0), [r(2, 3), r(2, 3)])
    gradcheck(lambda a: Pad.apply(a, pad=((1, 0), (2, 3))), [r(2, 3)])


# ---- parity with torch, float32 -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_torch(name):
    x = r(2, 3, 4).astype(np.float32)
    torch_ops = {
        "log": lambda t: (t * t + 0.5).log(), "sqrt": lambda t: (t * t + 0.5).sqrt(),
        "clamp": lambda t: t.clamp(-0.5, 0.7), "sum_axis": lambda t: t.sum(1),
        "sum_keep": lambda t: t.sum((0, 2), keepdim=True), "mean": lambda t: t.mean(-1),
        "max": lambda t: t.amax(1), "min": lambda t: t.amin(), "var": lambda t: t.var(2),
        "var_biased": lambda t: t.var((0, 1), correction=0), "std": lambda t: t.std(1),
        "reshape": lambda t: t.reshape(6, 4) * 2, "permute": lambda t: t.permute(2, 0, 1),
        "transpose": lambda t: t.transpose(0, 2), "T": lambda t: t.permute(2, 1, 0),
        "flatten": lambda t: t.flatten(1), "unsqueeze": lambda t: t.unsqueeze(1).squeeze(1),
        "expand": lambda t: t[:, :1].expand(2, 5, 4), "slice": lambda t: t[:, 1:, ::2],
        "fancy_index": lambda t: t[torch.tensor([0, 1, 0]), 2],
        "bool_mask": lambda t: t[t > 0], "pow": lambda t: t**3, "neg": lambda t: -t,
        "exp": lambda t: t.exp(), "erf": lambda t: t.erf(), "abs": lambda t: t.abs(),
        "relu": lambda t: t.relu(),
        "sigmoid": lambda t: t.sigmoid(), "tanh": lambda t: t.tanh(),
    }
    jx, tx = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    jy, ty = UNARY[name](jx), torch_ops[name](tx)
    assert_close(jy, ty, msg=name)
    upstream = r(*ty.shape).astype(np.float32)
    jy.backward(upstream)
    ty.backward(torch.from_numpy(upstream))
    assert_close(jx.grad, tx.grad, msg=f"{name} grad")


def test_max_ties_share_gradient_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    jx, tx = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    jx.max(1).sum().backward()
    tx.amax(1).sum().backward()
    assert_close(jx.grad, tx.grad)


# ---- autograd mechanics -------------------------------------------------------------------------
def test_gradient_accumulates_over_reuse_and_calls():
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0])
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0])


def test_indexing_a_channels_last_array_gives_its_gradient_channels_last():
    """x[:, :, ::2, ::2] of an NCHW view of channels-last memory (a ResNet shortcut): the
    gradient has x's memory order, so summing it with x's other gradients reads both alike;
    the values are those of the contiguous case."""
    from juanji.ops.kernels import is_channels_last
    from juanji.ops.movement import GetItem

    rng = np.random.default_rng(0)
    data = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    gy = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    grads = []
    for x in (data, np.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)):
        op = GetItem()  # the op's own gradient (a leaf's .grad is a contiguous copy)
        op.forward(x, (slice(None), slice(None), slice(None, None, 2), slice(None, None, 2)))
        grads.append(op.backward(gy))
    assert grads[0].flags.c_contiguous and is_channels_last(grads[1])
    np.testing.assert_array_equal(grads[0], grads[1])


def test_a_big_value_read_twice_sums_its_gradients_over_the_threads(monkeypatch):
    """A computed value two ops read (a residual block's input) gets the sum of their
    gradients, the bits of one NumPy add, from the blocked add over juanji's threads."""
    from juanji.ops import elementwise

    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 700, 600))  # 2^20 values and more: summed in blocks
    gy = rng.standard_normal((6, 700, 600))

    def gradient():
        x = juanji.tensor(data, requires_grad=True)
        h = x.exp()  # computed: its two gradients are summed in the graph, not at the leaf
        juanji.cat([h, h]).backward(juanji.tensor(gy))
        return x.grad

    sums, real = [], elementwise.ufunc_in_blocks
    monkeypatch.setattr(elementwise, "ufunc_in_blocks",
                        lambda *args: (sums.append(args[2].size), real(*args))[1])
    blocked = gradient()
    assert sums == [data.size]  # the sum of h's two gradients, and nothing else
    monkeypatch.setattr(elementwise, "ufunc_in_blocks", lambda ufunc, symbol, a, b: ufunc(a, b))
    np.testing.assert_array_equal(blocked.view(np.uint64), gradient().view(np.uint64))


def test_graph_is_freed_unless_retained():
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    assert y._ctx.released  # freed after the second call


def test_deep_graph_needs_no_recursion():
    x = juanji.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_no_grad_records_nothing():
    x = juanji.tensor([1.0], requires_grad=True)
    with juanji.no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    assert juanji.is_grad_enabled()


def test_leaf_grads_do_not_alias_each_other():
    a = juanji.tensor([1.0, 2.0], requires_grad=True)
    b = juanji.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_allclose(b.grad, [1.0, 1.0])


def test_float32_default_and_no_silent_upcast():
    assert juanji.tensor([1.0, 2.0]).dtype == np.float32
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.5 + 1) / 3 - x.exp()
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    assert juanji.tensor(np.zeros(2)).dtype == np.float64  # NumPy arrays keep their dtype


def test_backward_needs_scalar_or_gradient():
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar output"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="gradient shape"):
        (x * 2).backward(np.ones(3))


def test_comparisons_are_boolean_without_grad():
    x = juanji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert (x > 1.5).tolist() == [False, True, True]
    assert (x == 2.0).dtype == np.bool_
    assert not (x <= 2).requires_grad


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        juanji.tensor([1, 2], requires_grad=True)


def test_unbroadcast_reduces_leading_and_size_one_axes():
    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (3, 1)).tolist() == [[8.0]] * 3


def test_manual_seed_repeats_initialisation():
    from juanji import nn

    juanji.manual_seed(7)
    a = nn.Linear(3, 2).weight.data.copy()
    juanji.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Linear(3, 2).weight.data)
    with pytest.raises(ValueError, match="seed"):
        juanji.manual_seed(-1)


def test_graph_does_not_keep_intermediate_tensors_alive():
    import weakref

    x = juanji.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x  # Mul saves its inputs: x (a leaf) and x
    z = (y + 1.0).sum()  # Add saves nothing of y, so only the graph could hold it
    alive = weakref.ref(y)
    del y
    assert alive() is None  # the graph links to y's Function, not to y and its array
    z.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0, 6.0])


def test_backward_through_a_freed_graph_says_so():
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    (y * 2.0).sum().backward()  # frees the graph below, y's Function included
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.sum().backward()
    y = x * x
    (y * 2.0).sum().backward(retain_graph=True)
    y.sum().backward()  # kept: fine
    np.testing.assert_allclose(x.grad, [4.0 + 4.0 + 2.0, 8.0 + 8.0 + 4.0])


# ---- bad input: a freed graph, 1-D matmul, dims out of range ----------------------------------
@pytest.mark.parametrize("build", [lambda x: (x * x).sum(), lambda x: (x * 2.0).sum(),
                                   lambda x: (x @ x)], ids=["saves", "saves_nothing", "matmul"])
def test_second_backward_through_a_freed_graph_raises_like_torch(build):
    x = juanji.tensor([1.0, 2.0], requires_grad=True)
    y = build(x)
    y.backward()
    first = x.grad.copy()
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*"
                                           "retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad, first)  # untouched
    assert y.grad is None  # y was not taken for a leaf


MATMUL_SHAPES = [
    ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3,)), ((3,), (5, 3, 4)),
    ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
    ((1, 2, 3), (5, 3, 4)), ((0, 3), (3, 4)), ((2, 3), (2, 1, 3, 4)),
]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES,
                         ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_matches_torch_forward_and_backward(shape_a, shape_b):
    a, b = r(*shape_a), r(*shape_b)
    ja, jb = juanji.tensor(a, requires_grad=True), juanji.tensor(b, requires_grad=True)
    ta, tb = to_torch(a, requires_grad=True), to_torch(b, requires_grad=True)
    jy, ty = ja @ jb, ta @ tb
    assert_close(jy, ty)
    c = r(*ty.shape)  # a random upstream: a transposed gradient cannot hide
    (jy * juanji.tensor(c)).sum().backward()
    (ty * to_torch(c)).sum().backward()
    assert_close(ja.grad, ta.grad)
    assert_close(jb.grad, tb.grad)


def test_matmul_gradcheck_of_one_dimensional_operands():
    gradcheck(lambda a, b: a @ b, [r(4), r(4)])
    gradcheck(lambda a, b: a @ b, [r(4), r(3, 4, 2)])
    gradcheck(lambda a, b: a @ b, [r(3, 2, 4), r(4)])


def test_matmul_refuses_scalars_and_mismatched_shapes():
    with pytest.raises(ValueError, match="at least 1-D"):
        juanji.tensor(np.float32(2.0)) @ juanji.tensor(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 2\) cannot be multiplied"):
        juanji.tensor(np.ones((2, 3))) @ juanji.tensor(np.ones((4, 2)))


@pytest.mark.parametrize("call, name", [
    (lambda x: x.flatten(5), "start_dim=5"), (lambda x: x.flatten(0, -6), "end_dim=-6"),
    (lambda x: x.unsqueeze(6), "dim=6"), (lambda x: x.transpose(0, 4), "dim1=4"),
    (lambda x: x.permute(0, 1, 2, 4), "dim=4"), (lambda x: x.squeeze(-5), "dim=-5"),
])
def test_dims_out_of_range_raise_index_error_naming_dim_and_rank(call, name):
    x = juanji.tensor(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(IndexError, match=f"Dimension out of range: {name} for a tensor of rank 4"):
        call(x)
    with pytest.raises(IndexError):  # torch agrees that each is out of range
        call(torch.zeros(2, 3, 4, 5))


def test_flatten_follows_torch_on_edge_cases():
    x = juanji.tensor(np.zeros((2, 3, 4), np.float32))
    assert x.flatten(-2).shape == (2, 12)
    assert x.flatten(1, 1).shape == (2, 3, 4)
    assert juanji.tensor(np.float32(1.0)).flatten().shape == (1,)  # 0-d -> (1,), as torch
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match="each of the 3 dims once"):
        x.permute(0, 0, 1)


def test_expand_refuses_sizes_it_cannot_broadcast_to():
    x = juanji.tensor(np.ones((3, 1), np.float32))
    assert x.expand(2, -1, 4).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="cannot make dim 0 of size 3 into 4"):
        x.expand(4, 4)
    with pytest.raises(ValueError, match="at least as many sizes"):
        x.expand(3)
    with pytest.raises(ValueError, match="got -1 for dim 0"):
        x.expand(-1, 3, 1)
