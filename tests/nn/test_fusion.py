"""Batch-norm folding for inference: PyTorch's fuse_conv_bn_weights as the oracle for the
arithmetic, the original model as the oracle for fold_batch_norms."""

import numpy as np
import pytest
import torch

import juanji
import juanji.nn as nn
from juanji import models
from juanji.nn.utils import fold_batch_norms, fuse_conv_bn_eval, fuse_conv_bn_weights


def _randomize_batch_norms(model, seed=0):
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.data[:] = rng.standard_normal(c) * 0.2
            module.running_var.data[:] = rng.uniform(0.5, 2.0, c)
            if module.weight is not None:
                module.weight.data[:] = rng.uniform(0.5, 1.5, c)
                module.bias.data[:] = rng.standard_normal(c) * 0.1


@pytest.mark.parametrize("conv_bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_fuse_conv_bn_weights_matches_torch(conv_bias, affine):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32) if conv_bias else None
    rm, rv = rng.standard_normal(6).astype(np.float32), rng.uniform(0.5, 2, 6).astype(np.float32)
    g = rng.uniform(0.5, 1.5, 6).astype(np.float32) if affine else None
    beta = rng.standard_normal(6).astype(np.float32) if affine else None
    got_w, got_b = fuse_conv_bn_weights(w, b, rm, rv, 1e-3, g, beta)
    t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
    ref_w, ref_b = torch.nn.utils.fuse_conv_bn_weights(
        t(w), t(b), t(rm), t(rv), 1e-3, t(g) if affine else torch.ones(6),
        t(beta) if affine else torch.zeros(6))
    assert got_w.dtype == np.float32 and got_b.dtype == np.float32
    np.testing.assert_allclose(got_w, ref_w.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_b, ref_b.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_fuse_conv_bn_eval_gives_the_same_outputs_and_needs_eval_mode():
    conv, bn = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
    _randomize_batch_norms(bn)
    x = juanji.tensor(np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32))
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn_eval(conv, bn)
    conv.eval(), bn.eval()
    fused = fuse_conv_bn_eval(conv, bn)
    np.testing.assert_allclose(fused(x).data, bn(conv(x)).data, rtol=1e-5, atol=1e-5)
    assert fused is not conv and conv.bias is not None


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2", "vgg11_bn"])
def test_fold_batch_norms_removes_every_batch_norm_and_keeps_the_outputs(name):
    kwargs = {"num_classes": 10}
    model = models.create_model(name, **kwargs)
    _randomize_batch_norms(model)
    model.eval()
    size = 32
    x = np.random.default_rng(3).standard_normal((2, 3, size, size)).astype(np.float32)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batch_norms(model, x)
    assert before > 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == before  # untouched
    other = np.random.default_rng(4).standard_normal((3, 3, size, size)).astype(np.float32)
    with juanji.no_grad():
        want, got = model(juanji.tensor(other)).data, folded(juanji.tensor(other)).data
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


class _ConvReadTwice(nn.Module):
    """The conv output feeds the batch norm and a residual sum: folding would change it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_fold_batch_norms_refuses_what_it_cannot_fold():
    model = _ConvReadTwice()
    _randomize_batch_norms(model)
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model, x)
    with pytest.raises(ValueError, match="changed the model's output"):
        fold_batch_norms(model.eval(), x)
