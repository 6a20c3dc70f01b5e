"""Every zoo model runs forward and backward on a small batch at (about) its smallest input.

Weights are filled by `fast_init` (a tiled random pattern at the default init's scale): the
tests look at shapes and at the gradient reaching every parameter, and VGG's 100M-weight
Linear layers would otherwise take seconds each to fill.
"""

import numpy as np
import pytest

import juanji
from juanji.models import (
    alexnet,
    densenet,
    fcn,
    googlenet,
    inception,
    metric,
    mobilenet,
    resnet,
    senet,
    shufflenet,
    squeezenet,
    unet,
    vgg,
)

NUM_CLASSES = 5

# name -> (factory, C, H, W, extra kwargs); H x W is at or near the smallest input that runs.
CLASSIFIERS = {
    "alexnet": (alexnet.alexnet, 3, 63, 63, {}),
    "alexnet_lrn": (alexnet.alexnet_lrn, 3, 67, 67, {}),
    "zfnet": (alexnet.zfnet, 3, 64, 64, {}),
    **{name: (f, 3, 32, 32, {}) for name, f in vgg.FACTORIES.items()},
    **{name: (f, 3, 32, 32, {}) for name, f in resnet.FACTORIES.items()},
    **{name: (f, 3, 32, 32, {}) for name, f in senet.FACTORIES.items()},
    "googlenet": (googlenet.googlenet, 3, 32, 32, {}),
    "googlenet_aux": (googlenet.googlenet, 3, 32, 32, {"aux_logits": True}),
    "inception_v3": (inception.inception_v3, 3, 75, 75, {"aux_logits": False}),
    **{name: (f, 3, 32, 32, {}) for name, f in densenet.FACTORIES.items()},
    **{name: (f, 3, 32, 32, {}) for name, f in mobilenet.FACTORIES.items()},
    **{name: (f, 3, 32, 32, {}) for name, f in shufflenet.FACTORIES.items()},
    "squeezenet1_0": (squeezenet.squeezenet1_0, 3, 21, 21, {}),
    "squeezenet1_1": (squeezenet.squeezenet1_1, 3, 17, 17, {}),
}
# 2-8 s each (most of it filling 100M+ weights); CI runs them through the slow marker.
HEAVY = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "resnet101",
         "resnet152", "wide_resnet50_2"}


@pytest.fixture
def fast_init(monkeypatch):
    """Fill weights with a tiled random pattern at PyTorch's default scale (1 / sqrt(fan_in))."""
    from juanji.nn import init

    period = 1009  # prime, so the pattern does not line up with any layer's shape
    pattern = np.random.default_rng(0).uniform(-1.0, 1.0, period).astype(np.float32)

    def fill(tensor, *args, **kwargs):
        shape = tensor.shape
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        flat = tensor.data.reshape(-1)  # a view: the arrays are contiguous
        whole = flat.size // period * period
        flat[:whole].reshape(-1, period)[...] = pattern
        flat[whole:] = pattern[: flat.size - whole]
        flat *= np.float32(np.sqrt(3.0 / max(fan_in, 1)))
        return tensor

    monkeypatch.setattr(init, "uniform_", fill)
    monkeypatch.setattr(init, "normal_", fill)


def run_classifier(model, c, h, w, batch=2):
    """Train-mode forward + backward; returns the logits (and aux outputs, if any)."""
    x = juanji.tensor(np.random.default_rng(0).standard_normal((batch, c, h, w)).astype("f4"))
    out = model(x)
    outputs = list(out) if isinstance(out, tuple) else [out]
    upstream = np.random.default_rng(1).standard_normal(outputs[0].shape).astype(np.float32)
    loss = sum((o * juanji.tensor(upstream)).sum() for o in outputs)
    loss.backward()
    return outputs


def assert_every_parameter_has_a_finite_gradient(model):
    for key, p in model.named_parameters():
        assert p.grad is not None, f"{key} got no gradient"
        assert p.grad.shape == p.shape, key
        assert np.isfinite(p.grad).all(), f"{key} has a non-finite gradient"


def _classifier_case(name):
    marks = [pytest.mark.slow] if name in HEAVY else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_classifier_case(n) for n in CLASSIFIERS])
def test_classifier_forward_backward(name, fast_init):
    factory, c, h, w, kwargs = CLASSIFIERS[name]
    model = factory(num_classes=NUM_CLASSES, in_channels=c, **kwargs)
    outputs = run_classifier(model, c, h, w)
    expected = 3 if name == "googlenet_aux" else 1
    assert len(outputs) == expected
    for out in outputs:
        assert out.shape == (2, NUM_CLASSES)
        assert np.isfinite(out.data).all()
    assert_every_parameter_has_a_finite_gradient(model)
    model.eval()
    with juanji.no_grad():
        out = model(juanji.tensor(np.zeros((1, c, h, w), np.float32)))
    assert isinstance(out, juanji.Tensor) and out.shape == (1, NUM_CLASSES)


def test_inception_v3_aux_head_on_the_17x17_grid(fast_init):
    """The auxiliary head alone, on the grid a 299x299 input gives it (the full network with
    the head needs that input: see the slow test below)."""
    head = inception.InceptionAux(768, NUM_CLASSES)
    x = juanji.tensor(np.random.default_rng(0).standard_normal((2, 768, 17, 17)).astype("f4"))
    out = head(x)
    assert out.shape == (2, NUM_CLASSES)
    out.sum().backward()
    assert_every_parameter_has_a_finite_gradient(head)


@pytest.mark.slow
def test_inception_v3_with_aux_head_at_299(fast_init):
    model = inception.inception_v3(num_classes=NUM_CLASSES)
    logits, aux = run_classifier(model, 3, 299, 299)
    assert logits.shape == aux.shape == (2, NUM_CLASSES)
    assert_every_parameter_has_a_finite_gradient(model)


@pytest.mark.parametrize("name,size", [("fcn32s", (32, 32)), ("fcn16s", (64, 32)),
                                       ("fcn8s", (64, 96))])
def test_fcn_scores_every_pixel(name, size, fast_init):
    model = fcn.FACTORIES[name](num_classes=NUM_CLASSES, fc_channels=64)
    h, w = size
    x = juanji.tensor(np.random.default_rng(0).standard_normal((2, 3, h, w)).astype("f4"))
    out = model(x)
    assert out.shape == (2, NUM_CLASSES, h, w)
    out.sum().backward()
    assert_every_parameter_has_a_finite_gradient(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_full_size_fcn_forward_backward(name, fast_init):
    model = fcn.FACTORIES[name]()
    x = juanji.tensor(np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype("f4"))
    out = model(x)
    assert out.shape == (1, 21, 64, 64)
    out.sum().backward()
    assert_every_parameter_has_a_finite_gradient(model)


def test_fcn_rejects_sizes_not_divisible_by_32(fast_init):
    model = fcn.fcn8s(num_classes=2, fc_channels=8)
    with pytest.raises(ValueError, match="divisible by 32; got 48x40"):
        model(juanji.tensor(np.zeros((1, 3, 48, 40), np.float32)))


def test_fcn_upsampling_starts_bilinear():
    """A constant score map stays constant through the bilinear ConvTranspose2d (away from
    the border, where the kernel's support is cut)."""
    up = fcn._upsample(2, 8)
    out = up(juanji.tensor(np.ones((1, 2, 4, 4), np.float32))).data
    assert out.shape == (1, 2, 32, 32)
    np.testing.assert_allclose(out[:, :, 4:-4, 4:-4], 1.0, rtol=1e-6)
    assert np.abs(up.weight.data[0, 1]).max() == 0  # channels do not mix


@pytest.mark.parametrize("depth,width,size", [(4, 64, 32), (2, 8, 20), (3, 4, 24)])
def test_unet_segments_at_input_resolution(depth, width, size, fast_init):
    model = unet.unet(num_classes=3, in_channels=2, width=width, depth=depth)
    x = juanji.tensor(np.random.default_rng(0).standard_normal((2, 2, size, size)).astype("f4"))
    out = model(x)
    assert out.shape == (2, 3, size, size)
    out.sum().backward()
    assert_every_parameter_has_a_finite_gradient(model)


def test_unet_rejects_sizes_not_divisible_by_2_to_the_depth(fast_init):
    model = unet.unet(width=4, depth=3)
    with pytest.raises(ValueError, match="divisible by 8; got 20x20"):
        model(juanji.tensor(np.zeros((1, 1, 20, 20), np.float32)))


@pytest.mark.parametrize("kind", ["siamese", "triplet"])
def test_metric_networks_embed_with_shared_weights(kind, fast_init):
    model = metric.FACTORIES[kind](embedding_dim=16)
    rng = np.random.default_rng(0)
    inputs = [juanji.tensor(rng.standard_normal((3, 1, 28, 28)).astype("f4"))
              for _ in range(2 if kind == "siamese" else 3)]
    outputs = model(*inputs)
    assert len(outputs) == len(inputs)
    assert all(e.shape == (3, 16) for e in outputs)
    sum(e.sum() for e in outputs).backward()
    assert_every_parameter_has_a_finite_gradient(model)
    # one set of weights: the same input embeds identically in every branch
    model.eval()
    with juanji.no_grad():
        same = model(*[inputs[0]] * len(inputs))
    for e in same[1:]:
        np.testing.assert_array_equal(e.data, same[0].data)


def test_metric_network_wraps_a_zoo_backbone(fast_init):
    """A ResNet with its classifier swapped for Identity is a backbone of 512 features."""
    backbone = resnet.resnet18(in_channels=1)
    backbone.fc = juanji.nn.Identity()
    model = metric.triplet(backbone, embedding_dim=8, normalize=True)
    assert model.embedding.head.in_features == 512
    x = juanji.tensor(np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype("f4"))
    a, p, n = model(x, x, x)
    assert a.shape == (2, 8)
    np.testing.assert_allclose((a.data ** 2).sum(1), 1.0, rtol=1e-5)
