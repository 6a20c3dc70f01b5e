"""Output parity with torchvision's own model definitions, one architecture per zoo family.

Each case builds torchvision's model with random weights (weights=None), gives every BatchNorm
random affine parameters and running statistics (so eval mode is not near the identity), copies
the state_dict into the juanji model with strict=True, and runs a batch of 2 small images
through both: in train mode (batch statistics; every dropout built with p=0 in both models,
so the outputs are deterministic), after which the updated running statistics must agree too,
and in eval mode; GoogLeNet's and Inception v3's auxiliary logits are compared in train mode.
Everything runs once in float64, where juanji must agree to 1e-9 of the largest value, and once
in float32, where juanji's error against torchvision's float64 result must stay within a few
times torch's own float32 error. Inputs are as small as the architecture allows while every
train-mode BatchNorm still sees at least a 2x2 map (a 1x1 map over 2 samples makes the float32
outputs of torch itself wrong by tens of percent); Inception v3's auxiliary head normalises a
1x1 map by design, and there torch's float32 logits are 2e-4 off its float64 ones.

torchvision comes through `torchvision_models.models()`, which explains why a helper is needed
and skips only when torchvision is not installed. Families torchvision does not have (LeNet,
MobileNet v1, ShuffleNet v1, SENet, the CIFAR ResNets, U-Net, the VGG-based FCN: torchvision's
FCN has a ResNet backbone and an FCNHead, a different architecture) are not compared here.
"""

import numpy as np
import pytest
import torch
import torchvision_models

import juanji
from juanji.models import (
    alexnet,
    densenet,
    googlenet,
    inception,
    mobilenet,
    resnet,
    shufflenet,
    squeezenet,
    vgg,
)

# Errors are relative to the largest |torchvision's float64 value| of each compared array.
TOL64 = 1e-9  # float64: the same arithmetic up to rounding (the largest seen is below 1e-12)
# float32: within 4x torch's own float32 error on the same weights and input, or 8 float32 ulps
# of the scale. Train-mode BatchNorm over 2 samples of a 2x2 map amplifies rounding: there
# torch's float32 output is itself off by up to 2e-4 (Inception v3's auxiliary logits).
ROUNDING, FLOOR32 = 4.0, 1e-6
CLASSES = 10
NO_DROPOUT = {"dropout": 0.0}

# name: (juanji factory, torchvision factory name, torchvision kwargs, input height = width)
CASES = {
    "alexnet": (lambda: alexnet.alexnet(CLASSES, **NO_DROPOUT), "alexnet", NO_DROPOUT, 64),
    "vgg11": (lambda: vgg.vgg11(CLASSES, **NO_DROPOUT), "vgg11", NO_DROPOUT, 32),
    "vgg11_bn": (lambda: vgg.vgg11_bn(CLASSES, **NO_DROPOUT), "vgg11_bn", NO_DROPOUT, 32),
    "googlenet": (lambda: googlenet.googlenet(CLASSES, aux_logits=True, dropout=0.0,
                                              dropout_aux=0.0),
                  "googlenet", dict(aux_logits=True, transform_input=False, init_weights=True,
                                    dropout=0.0, dropout_aux=0.0), 64),
    # 299: the auxiliary head's 5x5 convolution needs Mixed_6e's 17x17 map
    "inception_v3": (lambda: inception.inception_v3(CLASSES, aux_logits=True, dropout=0.0),
                     "inception_v3", dict(aux_logits=True, transform_input=False,
                                          init_weights=True, dropout=0.0), 299),
    # BasicBlock; Bottleneck with groups (ResNeXt) and with a doubled width (Wide ResNet)
    "resnet18": (lambda: resnet.resnet18(CLASSES), "resnet18", {}, 64),
    "resnext50_32x4d": (lambda: resnet.resnext50_32x4d(CLASSES), "resnext50_32x4d", {}, 64),
    "wide_resnet50_2": (lambda: resnet.wide_resnet50_2(CLASSES), "wide_resnet50_2", {}, 64),
    "densenet121": (lambda: densenet.densenet121(CLASSES), "densenet121", {}, 64),
    "mobilenet_v2": (lambda: mobilenet.mobilenet_v2(CLASSES, **NO_DROPOUT), "mobilenet_v2",
                     NO_DROPOUT, 64),
    "mobilenet_v3_large": (lambda: mobilenet.mobilenet_v3_large(CLASSES, **NO_DROPOUT),
                           "mobilenet_v3_large", NO_DROPOUT, 64),
    "mobilenet_v3_small": (lambda: mobilenet.mobilenet_v3_small(CLASSES, **NO_DROPOUT),
                           "mobilenet_v3_small", NO_DROPOUT, 64),
    "shufflenet_v2_x0_5": (lambda: shufflenet.shufflenet_v2_x0_5(CLASSES),
                           "shufflenet_v2_x0_5", {}, 64),
    "squeezenet1_0": (lambda: squeezenet.squeezenet1_0(CLASSES, **NO_DROPOUT), "squeezenet1_0",
                      NO_DROPOUT, 64),
    "squeezenet1_1": (lambda: squeezenet.squeezenet1_1(CLASSES, **NO_DROPOUT), "squeezenet1_1",
                      NO_DROPOUT, 64),
}


def randomise_batch_norm(model, rng):
    """Non-trivial affine parameters and running statistics for every torch BatchNorm2d."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c)))
                module.bias.copy_(torch.from_numpy(rng.normal(0.0, 0.2, c)))
                module.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.2, c)))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)))


def as_tuple(output):
    """The logits, then any auxiliary logits (GoogLeNet / Inception v3 in train mode)."""
    return tuple(output) if isinstance(output, tuple) else (output,)


def run_both(model, reference, x):
    with torch.no_grad():
        theirs = as_tuple(reference(torch.from_numpy(x)))
    with juanji.no_grad():
        ours = as_tuple(model(juanji.tensor(x)))
    assert len(ours) == len(theirs), f"{len(ours)} outputs, torchvision gives {len(theirs)}"
    return [(o.data, t.numpy()) for o, t in zip(ours, theirs)]


def outputs(model, reference, state, x, dtype):
    """{what: (juanji's, torchvision's)} in `dtype`, both models starting from `state`:
    train-mode outputs, the running statistics that step leaves, eval-mode outputs."""
    model.to(dtype)
    reference.to(getattr(torch, np.dtype(dtype).name))
    model.load_state_dict(state, strict=True)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    x = x.astype(dtype)
    results = {}
    model.train()
    reference.train()
    for i, pair in enumerate(run_both(model, reference, x)):
        results[f"train-mode output {i}"] = pair
    theirs = reference.state_dict()
    for key, value in model.state_dict().items():
        if ".running_" in key:
            results[f"{key} after one train step"] = (value, theirs[key].numpy())
        elif key.endswith("num_batches_tracked"):
            assert int(value) == int(theirs[key]) == 1, key
    model.eval()
    reference.eval()
    (results["eval-mode output"],) = run_both(model, reference, x)
    return results


# the cases that take 5-25 s of CPU each (VGG's 103M-weight Linear; Inception at 299x299)
SLOW = ("vgg11", "vgg11_bn", "inception_v3", "wide_resnet50_2")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW
                                  else name for name in CASES])
def test_outputs_equal_torchvision_with_copied_weights(name, skip_init):
    factory, tv_name, tv_kwargs, size = CASES[name]
    rng = np.random.default_rng(0)
    reference = getattr(torchvision_models.models(), tv_name)(weights=None,
                                                             num_classes=CLASSES, **tv_kwargs)
    randomise_batch_norm(reference, rng)
    state = {k: v.numpy().copy() for k, v in reference.state_dict().items()}
    model = factory()
    x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    single = outputs(model, reference, state, x, np.float32)
    double = outputs(model, reference, state, x, np.float64)
    assert single.keys() == double.keys()
    worst = {"float64": 0.0, "float32": 0.0, "torch's float32": 0.0}
    for what, (ours64, exact) in double.items():
        ours32, theirs32 = single[what]
        assert ours64.shape == exact.shape, f"{what}: shape {ours64.shape} != {exact.shape}"
        scale = float(np.abs(exact).max())
        err64 = float(np.abs(ours64 - exact).max()) / scale
        err32 = float(np.abs(ours32 - exact).max()) / scale
        torch32 = float(np.abs(theirs32 - exact).max()) / scale
        assert err64 <= TOL64, f"{what}: float64 error {err64:.3g} of max|torch| > {TOL64}"
        assert err32 <= ROUNDING * torch32 + FLOOR32, (
            f"{what}: float32 error {err32:.3g} of max|torch float64|, torch's own float32 "
            f"error {torch32:.3g}")
        for key, err in zip(worst, (err64, err32, torch32)):
            worst[key] = max(worst[key], err)
    print(f"\n{name}: largest relative error " + ", ".join(f"{k} {v:.2g}"
                                                          for k, v in worst.items()))
