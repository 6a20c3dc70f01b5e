"""Dropout, Dropout2d, AlphaDropout: exact results with a fixed mask (including PyTorch's own
mask, recovered from its output), statistics of the random mask, both scaling conventions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops import dropout as ops

ALPHA_PRIME = 1.7580993408473766


def _ones(shape):
    return juanji.tensor(np.ones(shape, np.float32), requires_grad=True)


# ---- exact, with a fixed mask ----------------------------------------------------------------
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("scale_kept", [True, False])
def test_dropout_fixed_mask_exact(p, scale_kept):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    keep = rng.random((4, 5)) >= 0.5
    xj = juanji.tensor(x, requires_grad=True)
    y = ops.Dropout.apply(xj, p=p, keep=keep, scale_kept=scale_kept)
    scale = np.float32(1 / (1 - p)) if scale_kept else np.float32(1)
    np.testing.assert_array_equal(y.data, x * keep * scale)
    g = rng.standard_normal((4, 5)).astype(np.float32)
    y.backward(g)
    np.testing.assert_array_equal(xj.grad, g * keep * scale)


def test_dropout_fixed_mask_gradcheck():
    rng = np.random.default_rng(1)
    keep = rng.random((3, 4)) >= 0.4
    gradcheck(lambda t: ops.Dropout.apply(t, p=0.4, keep=keep), [rng.standard_normal((3, 4))])
    keep2d = rng.random((2, 3, 1, 1)) >= 0.5
    gradcheck(lambda t: ops.Dropout.apply(t, p=0.5, keep=keep2d),
              [rng.standard_normal((2, 3, 2, 2))])
    gradcheck(lambda t: ops.AlphaDropout.apply(t, p=0.3, keep=keep),
              [rng.standard_normal((3, 4))])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_matches_torch_given_torchs_mask(p):
    """torch draws a mask; juanji with that mask reproduces torch's output and gradient."""
    x = np.random.default_rng(2).uniform(0.5, 2.0, (6, 7)).astype(np.float32)  # nonzero
    xt = to_torch(x, requires_grad=True)
    yt = TF.dropout(xt, p, training=True)
    keep = yt.detach().numpy() != 0
    xj = juanji.tensor(x, requires_grad=True)
    yj = ops.Dropout.apply(xj, p=p, keep=keep)
    assert_close(yj, yt)
    g = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    yj.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad)


def test_dropout2d_matches_torch_given_torchs_mask():
    x = np.random.default_rng(4).uniform(0.5, 2.0, (4, 6, 3, 3)).astype(np.float32)
    xt = to_torch(x, requires_grad=True)
    yt = TF.dropout2d(xt, 0.5, training=True)
    keep = (yt.detach().numpy() != 0)[:, :, :1, :1]  # (N, C, 1, 1)
    xj = juanji.tensor(x, requires_grad=True)
    yj = ops.Dropout.apply(xj, p=0.5, keep=keep)
    assert_close(yj, yt)
    g = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    yj.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_alpha_dropout_matches_torch_given_torchs_mask(p):
    x = np.random.default_rng(6).standard_normal((50, 8)).astype(np.float32)
    xt = to_torch(x, requires_grad=True)
    yt = TF.alpha_dropout(xt, p, training=True)
    a = 1 / np.sqrt((ALPHA_PRIME**2 * p + 1) * (1 - p))
    dropped_value = -ALPHA_PRIME * a * (1 - p)
    keep = ~np.isclose(yt.detach().numpy(), dropped_value, rtol=0, atol=1e-6)
    assert 0 < keep.mean() < 1
    xj = juanji.tensor(x, requires_grad=True)
    yj = ops.AlphaDropout.apply(xj, p=p, keep=keep)
    assert_close(yj, yt)
    g = np.random.default_rng(7).standard_normal(x.shape).astype(np.float32)
    yj.backward(g)
    yt.backward(torch.tensor(g))
    assert_close(xj.grad, xt.grad)


# ---- random masks: statistics and conventions -----------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.3, 0.75])
def test_dropout_statistics_upscale(p):
    x = _ones((200, 500))
    y = F.dropout(x, p, training=True)
    n = y.data.size
    dropped = (y.data == 0).mean()
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / n)  # 4 sigma of a binomial proportion
    kept = y.data[y.data != 0]
    np.testing.assert_allclose(kept, 1 / (1 - p), rtol=1e-6)
    assert abs(y.data.mean() - 1.0) < 4 * np.sqrt(p / (1 - p) / n)  # E[y] = x
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, y.data)  # same mask forward and backward


@pytest.mark.parametrize("p", [0.25, 0.6])
def test_downscale_in_infer_has_the_same_expected_output(p):
    """Paddle's convention: mask only in training, scale by (1 - p) at inference."""
    x = _ones((200, 500))
    y_train = F.dropout(x, p, training=True, mode="downscale_in_infer")
    kept = y_train.data[y_train.data != 0]
    np.testing.assert_array_equal(kept, 1.0)  # not scaled while training
    y_eval = F.dropout(x, p, training=False, mode="downscale_in_infer")
    np.testing.assert_allclose(y_eval.data, 1 - p, rtol=1e-6)
    n = x.data.size
    assert abs(y_train.data.mean() - y_eval.data.mean()) < 4 * np.sqrt(p * (1 - p) / n)
    up_train = F.dropout(x, p, training=True).data.mean()
    up_eval = F.dropout(x, p, training=False).data.mean()
    assert abs(up_train / up_eval - y_train.data.mean() / y_eval.data.mean()) < 0.02


def test_dropout_layer_modes_and_eval():
    x = juanji.tensor(np.arange(1, 13, dtype=np.float32).reshape(3, 4))
    up, down = nn.Dropout(0.5), nn.Dropout(0.5, mode="downscale_in_infer")
    up.eval()
    down.eval()
    assert up(x) is x
    np.testing.assert_array_equal(down(x).data, x.data * 0.5)
    assert "downscale_in_infer" in repr(down)


def test_dropout_is_reproducible_with_manual_seed():
    x = _ones((8, 8))
    juanji.manual_seed(123)
    a = F.dropout(x, 0.5).data
    juanji.manual_seed(123)
    b = F.dropout(x, 0.5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, F.dropout(x, 0.5).data)
    gen = np.random.default_rng(7)
    c = F.dropout(x, 0.5, generator=gen).data
    np.testing.assert_array_equal(c, F.dropout(x, 0.5, generator=np.random.default_rng(7)).data)


def test_dropout_extreme_probabilities():
    x = _ones((3, 4))
    assert F.dropout(x, 0.0) is x
    y = F.dropout(x, 1.0)
    np.testing.assert_array_equal(y.data, 0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, 0)
    for fn in (F.dropout2d, F.alpha_dropout):
        x4 = _ones((2, 3, 2, 2))
        np.testing.assert_array_equal(fn(x4, 1.0, True).data, 0)
        assert fn(x4, 0.0, True) is x4


def test_dropout2d_drops_whole_channels():
    x = _ones((40, 50, 3, 3))
    y = nn.Dropout2d(0.4)(x).data
    per_map = y.reshape(40, 50, 9)
    assert (per_map.min(axis=2) == per_map.max(axis=2)).all()  # each map all-zero or all-kept
    dropped = (per_map[:, :, 0] == 0).mean()
    assert abs(dropped - 0.4) < 4 * np.sqrt(0.24 / 2000)
    np.testing.assert_allclose(per_map[per_map != 0], 1 / 0.6, rtol=1e-6)
    y3 = F.dropout2d(_ones((20, 30, 5)), 0.5).data  # (N, C, L): one mask entry per (n, c)
    assert (y3.min(axis=2) == y3.max(axis=2)).all()
    layer = nn.Dropout2d(0.4).eval()
    assert layer(x) is x


def test_alpha_dropout_keeps_mean_and_variance():
    x = juanji.tensor(np.random.default_rng(8).standard_normal((400, 500)).astype(np.float32))
    layer = nn.AlphaDropout(0.3)
    y = layer(x).data
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    layer.eval()
    assert layer(x) is x
    assert F.alpha_dropout(x, 0.5) is x  # PyTorch's functional default: training=False


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", None])
def test_probability_errors(bad):
    for make in (lambda: nn.Dropout(bad), lambda: nn.Dropout2d(bad),
                 lambda: nn.AlphaDropout(bad), lambda: F.dropout(_ones(3), bad),
                 lambda: F.dropout2d(_ones((1, 2, 2)), bad)):
        with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\]"):
            make()


def test_dropout_argument_errors():
    with pytest.raises(ValueError, match="mode must be one of"):
        nn.Dropout(0.5, mode="downgrade")
    with pytest.raises(ValueError, match=r"dropout2d expects .*\(2, 3\)"):
        F.dropout2d(_ones((2, 3)), 0.5)
