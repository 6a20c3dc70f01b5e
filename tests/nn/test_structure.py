"""Structural layers and joins: Unflatten, ChannelShuffle, SqueezeExcitation, juanji.cat /
stack / add, against PyTorch (a torchvision-shaped SE block is rebuilt here from torch.nn)."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F


def _randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _forward_backward(jfn, tfn, arrays, seed=1):
    js = [juanji.tensor(a, requires_grad=True) for a in arrays]
    ts = [to_torch(a, requires_grad=True) for a in arrays]
    yj, yt = jfn(*js), tfn(*ts)
    assert_close(yj, yt, msg="forward")
    g = np.random.default_rng(seed).standard_normal(yj.shape).astype(np.float32)
    (yj * juanji.tensor(g)).sum().backward()
    yt.backward(torch.tensor(g))
    for i, (j, t) in enumerate(zip(js, ts)):
        assert_close(j.grad, t.grad, msg=f"gradient of input {i}")


# ---- Unflatten -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,dim,size", [((2, 12), 1, (3, 4)), ((2, 12), -1, (2, -1, 3)),
                                            ((6, 5), 0, (2, 3)), ((2, 8, 3), 1, (2, 2, 2))])
def test_unflatten_matches_torch(shape, dim, size):
    _forward_backward(nn.Unflatten(dim, size), torch.nn.Unflatten(dim, size), [_randn(shape)])


def test_unflatten_inverts_flatten():
    x = juanji.tensor(_randn((2, 3, 4, 5)))
    y = nn.Unflatten(1, (3, 4, 5))(nn.Flatten()(x))
    np.testing.assert_array_equal(y.data, x.data)


def test_unflatten_errors():
    with pytest.raises(ValueError, match="unflattened_size"):
        nn.Unflatten(1, (3, 0))
    with pytest.raises(ValueError, match="unflattened_size"):
        nn.Unflatten(1, (-1, -1))
    with pytest.raises(ValueError, match=r"cannot split dim 1 of size 12 into \(5, 2\)"):
        nn.Unflatten(1, (5, 2))(juanji.tensor(_randn((2, 12))))
    with pytest.raises(ValueError, match="out of range"):
        nn.Unflatten(3, (2, 2))(juanji.tensor(_randn((2, 4))))


# ---- ChannelShuffle --------------------------------------------------------------------------
@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 3), 2), ((2, 6, 3, 3), 3), ((1, 8, 2, 5), 4),
                                          ((2, 4, 5), 2), ((3, 5, 2, 2), 1), ((2, 6, 1, 1), 6)])
def test_channel_shuffle_matches_torch(shape, groups):
    _forward_backward(nn.ChannelShuffle(groups), torch.nn.ChannelShuffle(groups), [_randn(shape)])


def test_channel_shuffle_order_by_hand():
    x = juanji.tensor(np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1))
    assert nn.ChannelShuffle(2)(x).data.ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert nn.ChannelShuffle(3)(x).data.ravel().tolist() == [0, 2, 4, 1, 3, 5]


def test_channel_shuffle_errors():
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nn.ChannelShuffle(0)
    with pytest.raises(ValueError, match="6 channels, groups=4"):
        nn.ChannelShuffle(4)(juanji.tensor(_randn((1, 6, 2, 2))))


# ---- Squeeze-and-excitation ------------------------------------------------------------------
class TorchSE(torch.nn.Module):
    """torchvision.ops.SqueezeExcitation's structure (torchvision is not installed here)."""

    def __init__(self, c, s, activation=torch.nn.ReLU, scale_activation=torch.nn.Sigmoid):
        super().__init__()
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Conv2d(c, s, 1)
        self.fc2 = torch.nn.Conv2d(s, c, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


@pytest.mark.parametrize("c,s,acts", [(8, 2, ()), (6, 3, ("SiLU", "Hardsigmoid")), (4, 4, ())])
def test_squeeze_excitation_matches_torch(c, s, acts):
    kwargs = {} if not acts else {"activation": getattr(nn, acts[0]),
                                  "scale_activation": getattr(nn, acts[1])}
    tkwargs = {} if not acts else {"activation": getattr(torch.nn, acts[0]),
                                   "scale_activation": getattr(torch.nn, acts[1])}
    se, ref = nn.SqueezeExcitation(c, s, **kwargs), TorchSE(c, s, **tkwargs)
    assert list(se.state_dict()) == list(ref.state_dict()) == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    ref.load_state_dict({k: torch.tensor(np.array(v)) for k, v in se.state_dict().items()})
    x = _randn((2, c, 5, 4), seed=2)
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, True)
    yj, yt = se(xj), ref(xt)
    assert_close(yj, yt, msg="forward")
    g = _randn(yj.shape, seed=3)
    (yj * juanji.tensor(g)).sum().backward()
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad, msg="input gradient")
    for (name, p), (_, q) in zip(se.named_parameters(), ref.named_parameters()):
        assert_close(p.grad, q.grad, msg=name)


def test_squeeze_excitation_gradcheck_and_alias():
    assert nn.SEBlock is nn.SqueezeExcitation
    se = nn.SEBlock(4, 2).double()
    x = np.random.default_rng(4).standard_normal((2, 4, 3, 3))
    gradcheck(se, [x])
    assert isinstance(se.activation, nn.ReLU) and isinstance(se.scale_activation, nn.Sigmoid)
    assert [name for name, _ in se.named_children()] == [
        "avgpool", "fc1", "fc2", "activation", "scale_activation"]  # torchvision's order
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        se(juanji.tensor(np.ones((4, 3, 3))))


# ---- cat / stack / add -----------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1, 3])
def test_cat_matches_torch(dim):
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]
    shapes = [tuple(n + i if d == dim % 4 else n for d, n in enumerate(s))
              for i, s in enumerate(shapes)]
    arrays = [_randn(s, seed=i) for i, s in enumerate(shapes)]
    _forward_backward(lambda *t: juanji.cat(list(t), dim), lambda *t: torch.cat(t, dim), arrays)


@pytest.mark.parametrize("dim", [0, 2, -1])
def test_stack_matches_torch(dim):
    arrays = [_randn((3, 4), seed=i) for i in range(3)]
    _forward_backward(lambda *t: juanji.stack(t, dim), lambda *t: torch.stack(t, dim), arrays)


def test_add_matches_torch_with_broadcast_and_alpha():
    a, b = _randn((2, 3, 4)), _randn((3, 1), seed=5)
    _forward_backward(lambda x, y: juanji.add(x, y), lambda x, y: torch.add(x, y), [a, b])
    _forward_backward(lambda x, y: juanji.add(x, y, alpha=-0.5),
                      lambda x, y: torch.add(x, y, alpha=-0.5), [a, b])


def test_joins_gradcheck():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    gradcheck(lambda x, y: juanji.cat([x, y], 1), [a, b])
    gradcheck(lambda x, y: juanji.stack([x, y], 1), [a, rng.standard_normal((2, 3))])
    gradcheck(lambda x, y: juanji.add(x, y, alpha=2.0), [a, rng.standard_normal(3)])


def test_join_errors():
    a, b = juanji.tensor(_randn((2, 3))), juanji.tensor(_randn((2, 4)))
    with pytest.raises(ValueError, match=r"every dim but 0.*\[\(2, 3\), \(2, 4\)\]"):
        juanji.cat([a, b], 0)
    with pytest.raises(ValueError, match="non-empty list"):
        juanji.cat([], 0)
    with pytest.raises(ValueError, match=r"dim must be in \[-2, 1\]"):
        juanji.cat([a, a], 2)
    with pytest.raises(ValueError, match="one shape"):
        juanji.stack([a, b])
    assert juanji.stack([a, a], 2).shape == (2, 3, 2)


def test_channel_cat_of_conv_outputs_stays_channels_last_and_matches_torch():
    # (convs with at most 8 products of channels, C * OC, give channels-first memory instead
    # where the channels-first kernel runs: see test_conv's CHANNELS_FIRST_GRID)
    x = _randn((2, 3, 5, 6), seed=1)
    w1, w2 = _randn((4, 3, 3, 3), seed=2), _randn((5, 3, 1, 1), seed=3)

    def ours(x, w1, w2):
        out = juanji.cat([F.conv2d(x, w1, padding=1), F.conv2d(x, w2)], 1)
        assert out.data.transpose(0, 2, 3, 1).flags.c_contiguous  # no copy for what follows
        return out

    _forward_backward(ours, lambda x, w1, w2: torch.cat(
        [torch.nn.functional.conv2d(x, w1, padding=1), torch.nn.functional.conv2d(x, w2)], 1),
        [x, w1, w2])
