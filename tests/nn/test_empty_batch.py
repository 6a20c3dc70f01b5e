"""Empty batches (N = 0) go through every layer, loss and functional op as in PyTorch: outputs
of the right (empty) shape, a working backward, and 'mean' losses over nothing are nan."""

import numpy as np
import pytest
import torch

import juanji
import juanji.nn.functional as F
from juanji import nn

# (id, make(nn-module namespace) -> layer, input shape with N = 0); the same constructor call
# builds the juanji layer (nn=juanji.nn) and the torch one (nn=torch.nn)
LAYERS = [
    ("conv2d", lambda m: m.Conv2d(3, 4, 3, padding=1), (0, 3, 5, 5)),
    ("conv2d_strided_groups", lambda m: m.Conv2d(4, 6, 3, stride=2, groups=2), (0, 4, 7, 7)),
    ("conv2d_reflect", lambda m: m.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
     (0, 3, 5, 5)),
    ("conv2d_depthwise", lambda m: m.Conv2d(4, 8, 3, groups=4), (0, 4, 6, 6)),
    ("conv2d_pointwise", lambda m: m.Conv2d(4, 6, 1), (0, 4, 6, 6)),
    ("conv2d_first_layer", lambda m: m.Conv2d(1, 6, 5), (0, 1, 28, 28)),
    ("conv2d_dilated", lambda m: m.Conv2d(3, 4, 3, dilation=2, bias=False), (0, 3, 9, 9)),
    ("conv1d", lambda m: m.Conv1d(3, 4, 3), (0, 3, 9)),
    ("conv_transpose2d", lambda m: m.ConvTranspose2d(3, 4, 3, stride=2), (0, 3, 4, 4)),
    ("conv_transpose1d", lambda m: m.ConvTranspose1d(3, 4, 3, stride=2), (0, 3, 4)),
    ("linear", lambda m: m.Linear(5, 3), (0, 5)),
    ("flatten", lambda m: m.Flatten(), (0, 3, 2, 2)),
    ("batchnorm2d_train", lambda m: m.BatchNorm2d(3), (0, 3, 4, 4)),
    ("batchnorm2d_eval", lambda m: m.BatchNorm2d(3).eval(), (0, 3, 4, 4)),
    ("batchnorm1d_train", lambda m: m.BatchNorm1d(3), (0, 3)),
    ("batchnorm1d_3d_train", lambda m: m.BatchNorm1d(3), (0, 3, 5)),
    ("layernorm", lambda m: m.LayerNorm(4), (0, 3, 4)),
    ("groupnorm", lambda m: m.GroupNorm(1, 4), (0, 4, 3, 3)),
    ("local_response_norm", lambda m: m.LocalResponseNorm(2), (0, 3, 4, 4)),
    ("maxpool2d", lambda m: m.MaxPool2d(2), (0, 3, 4, 4)),
    ("maxpool2d_ceil", lambda m: m.MaxPool2d(3, 2, 1, ceil_mode=True), (0, 3, 6, 6)),
    ("maxpool1d", lambda m: m.MaxPool1d(2), (0, 3, 6)),
    ("avgpool2d", lambda m: m.AvgPool2d(3, 2, 1), (0, 3, 5, 5)),
    ("avgpool1d", lambda m: m.AvgPool1d(2), (0, 3, 6)),
    ("lppool2d", lambda m: m.LPPool2d(2, 2), (0, 3, 4, 4)),
    ("adaptive_avgpool2d", lambda m: m.AdaptiveAvgPool2d((2, 3)), (0, 3, 5, 7)),
    ("adaptive_maxpool2d", lambda m: m.AdaptiveMaxPool2d(2), (0, 3, 5, 5)),
    ("adaptive_avgpool1d", lambda m: m.AdaptiveAvgPool1d(2), (0, 3, 5)),
    ("adaptive_maxpool1d", lambda m: m.AdaptiveMaxPool1d(2), (0, 3, 5)),
    ("upsample_nearest", lambda m: m.Upsample(scale_factor=2), (0, 3, 4, 4)),
    ("upsample_bilinear", lambda m: m.Upsample(size=(5, 7), mode="bilinear"), (0, 3, 4, 4)),
    ("pixel_shuffle", lambda m: m.PixelShuffle(2), (0, 8, 3, 3)),
    ("pixel_unshuffle", lambda m: m.PixelUnshuffle(2), (0, 2, 4, 4)),
    ("zero_pad", lambda m: m.ZeroPad2d((1, 2, 3, 4)), (0, 3, 4, 4)),
    ("reflection_pad", lambda m: m.ReflectionPad2d(1), (0, 3, 4, 4)),
    ("replication_pad", lambda m: m.ReplicationPad2d(2), (0, 3, 4, 4)),
    ("dropout", lambda m: m.Dropout(0.5), (0, 3)),
    ("dropout2d", lambda m: m.Dropout2d(0.5), (0, 3, 4, 4)),
    ("relu", lambda m: m.ReLU(), (0, 3)),
    ("relu6", lambda m: m.ReLU6(), (0, 3)),
    ("leaky_relu", lambda m: m.LeakyReLU(0.1), (0, 3)),
    ("prelu", lambda m: m.PReLU(3), (0, 3, 2, 2)),
    ("elu", lambda m: m.ELU(), (0, 3)),
    ("selu", lambda m: m.SELU(), (0, 3)),
    ("gelu", lambda m: m.GELU(), (0, 3)),
    ("silu", lambda m: m.SiLU(), (0, 3)),
    ("hardswish", lambda m: m.Hardswish(), (0, 3)),
    ("hardsigmoid", lambda m: m.Hardsigmoid(), (0, 3)),
    ("hardtanh", lambda m: m.Hardtanh(), (0, 3)),
    ("softplus", lambda m: m.Softplus(), (0, 3)),
    ("sigmoid", lambda m: m.Sigmoid(), (0, 3)),
    ("tanh", lambda m: m.Tanh(), (0, 3)),
    ("softmax", lambda m: m.Softmax(dim=1), (0, 3)),
    ("log_softmax", lambda m: m.LogSoftmax(dim=1), (0, 3)),
    ("channel_shuffle", lambda m: m.ChannelShuffle(2), (0, 4, 3, 3)),
    ("unflatten", lambda m: m.Unflatten(1, (2, 3)), (0, 6)),
]


# torch 2.13 returns an empty input to pixel_unshuffle unchanged, (0, 2, 4, 4); juanji gives the
# shape that any other batch size gets (torch does too for N = 1: (1, 8, 2, 2))
TORCH_QUIRKS = {"pixel_unshuffle": (0, 8, 2, 2)}


@pytest.mark.parametrize("name, make, shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_takes_an_empty_batch_like_torch(name, make, shape):
    layer = make(nn)
    expected = TORCH_QUIRKS.get(name) or tuple(make(torch.nn)(torch.zeros(shape)).shape)
    x = juanji.tensor(np.zeros(shape, dtype=np.float32), requires_grad=True)
    out = layer(x)
    assert out.shape == expected
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.shape == shape
    for p in layer.parameters():  # no samples: no gradient contribution
        assert p.grad is not None and not p.grad.any()


def test_batchnorm_training_on_an_empty_batch_keeps_running_stats_like_torch():
    layer, reference = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    layer(juanji.tensor(np.zeros((0, 3, 4, 4), dtype=np.float32)))
    reference(torch.zeros(0, 3, 4, 4))
    np.testing.assert_array_equal(layer.running_mean.data, reference.running_mean.numpy())
    np.testing.assert_array_equal(layer.running_var.data, reference.running_var.numpy())
    assert int(layer.num_batches_tracked.data) == int(reference.num_batches_tracked)


def _indices(n, c):
    return np.zeros((n,) if c is None else (n, c), dtype=np.int64)


# (id, juanji/torch function name, input shapes, target maker, kwargs)
LOSSES = [
    ("mse", "mse_loss", [(0, 3)], lambda: np.zeros((0, 3), np.float32), {}),
    ("l1", "l1_loss", [(0, 3)], lambda: np.zeros((0, 3), np.float32), {}),
    ("smooth_l1", "smooth_l1_loss", [(0, 3)], lambda: np.zeros((0, 3), np.float32), {}),
    ("huber", "huber_loss", [(0, 3)], lambda: np.zeros((0, 3), np.float32), {}),
    ("bce", "binary_cross_entropy", [(0, 3)], lambda: np.zeros((0, 3), np.float32), {}),
    ("bce_logits", "binary_cross_entropy_with_logits", [(0, 3)],
     lambda: np.zeros((0, 3), np.float32), {}),
    ("cross_entropy", "cross_entropy", [(0, 4)], lambda: _indices(0, None), {}),
    ("cross_entropy_2d", "cross_entropy", [(0, 4, 2, 2)],
     lambda: np.zeros((0, 2, 2), np.int64), {}),
    ("cross_entropy_probs", "cross_entropy", [(0, 4)], lambda: np.zeros((0, 4), np.float32), {}),
    ("cross_entropy_smooth", "cross_entropy", [(0, 4)], lambda: _indices(0, None),
     {"label_smoothing": 0.1}),
    ("nll", "nll_loss", [(0, 4)], lambda: _indices(0, None), {}),
    ("margin_ranking", "margin_ranking_loss", [(0,), (0,)], lambda: np.zeros(0, np.float32), {}),
    ("cosine_embedding", "cosine_embedding_loss", [(0, 3), (0, 3)],
     lambda: np.zeros(0, np.float32), {}),
    ("triplet", "triplet_margin_loss", [(0, 3), (0, 3), (0, 3)], None, {}),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, inputs, target, kwargs", [c[1:] for c in LOSSES],
                         ids=[c[0] for c in LOSSES])
def test_loss_of_an_empty_batch_matches_torch(name, inputs, target, kwargs, reduction):
    arrays = [np.full(s, 0.5, dtype=np.float32) for s in inputs]
    if target is not None:
        arrays.append(target())
    expected = getattr(torch.nn.functional, name)(*map(torch.from_numpy, arrays),
                                                   reduction=reduction, **kwargs)
    xs = [juanji.tensor(a, requires_grad=i < len(inputs)) for i, a in enumerate(arrays)]
    out = getattr(F, name)(*xs, reduction=reduction, **kwargs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_array_equal(out.data, expected.numpy())  # nan for 'mean', as torch
    out.sum().backward()
    for x in xs[:len(inputs)]:
        assert x.grad.shape == x.shape


def test_matmul_and_reductions_of_an_empty_batch():
    x = juanji.tensor(np.zeros((0, 3), dtype=np.float32), requires_grad=True)
    w = juanji.tensor(np.ones((3, 2), dtype=np.float32), requires_grad=True)
    out = x @ w
    assert out.shape == (0, 2)
    out.sum().backward()
    assert x.grad.shape == (0, 3) and not w.grad.any()
    assert np.isnan(x.mean().item()) and x.sum().item() == 0
