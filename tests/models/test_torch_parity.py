"""Numerical equivalence with PyTorch: LeNet-5, ResNet-18, MobileNetV2 and U-Net.

Each reference is written here in plain torch.nn with the same structure and key names (so it
is torchvision's for ResNet-18 and MobileNetV2). The juanji model's weights are randomised
(BatchNorm affine parameters and running statistics too, so eval mode is not the identity),
loaded into both models with strict=True, and we compare: train-mode logits, the gradients of
every parameter under a cross-entropy loss, the updated running statistics, and eval-mode
logits.
"""

import numpy as np
import torch  # noqa: E402  (a test dependency: its absence is a failure)

import juanji
from benchmarks.torch_models import TorchMobileNetV2, TorchResNet18
from juanji.nn import functional as F

tnn = torch.nn
tF = torch.nn.functional


def torch_double_conv(cin, cout):
    return tnn.Sequential(tnn.Conv2d(cin, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout),
                          tnn.ReLU(), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                          tnn.BatchNorm2d(cout), tnn.ReLU())


class TorchUp(tnn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = tnn.ConvTranspose2d(cin, cin // 2, 2, 2)
        self.conv = torch_double_conv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], 1))


class TorchUNet(tnn.Module):
    def __init__(self, num_classes, in_channels, width, depth):
        super().__init__()
        self.inc = torch_double_conv(in_channels, width)
        self.downs = tnn.ModuleList(
            tnn.Sequential(tnn.MaxPool2d(2), torch_double_conv(width * 2**i, width * 2 ** (i + 1)))
            for i in range(depth))
        self.ups = tnn.ModuleList(TorchUp(width * 2 ** (i + 1), width * 2**i)
                                  for i in reversed(range(depth)))
        self.outc = tnn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        x = self.inc(x)
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


class TorchLeNet5(tnn.Module):
    def __init__(self):
        super().__init__()
        self.features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(),
                                       tnn.MaxPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
                                       tnn.MaxPool2d(2))
        self.classifier = tnn.Sequential(tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84),
                                         tnn.ReLU(), tnn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


# ---- the comparison ---------------------------------------------------------------------------

def randomise_batch_norm(model, rng):
    """Give every BN non-trivial affine parameters and running statistics (in place)."""
    for module in model.modules():
        if isinstance(module, juanji.nn.BatchNorm2d):
            c = module.weight.shape[0]
            module.weight.data[...] = rng.uniform(0.5, 1.5, c)
            module.bias.data[...] = rng.normal(0.0, 0.2, c)
            module.running_mean.data[...] = rng.normal(0.0, 0.2, c)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, c)


def assert_close(ours, theirs, tol, what, atol=0.0):
    """max |ours - theirs| <= tol * max |theirs| + atol (atol for values that are zero in exact
    arithmetic, e.g. the gradient of a bias followed by a train-mode BatchNorm)."""
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = float(np.abs(theirs).max())
    err = float(np.abs(ours - theirs).max())
    assert err <= tol * scale + atol, (
        f"{what}: max error {err:.3g} > {tol} * max|torch| {scale:.3g} + {atol}")


def compare(model, reference, x, num_classes, dense=False, float32_grads=True):
    """Load juanji's (randomised) weights into `reference`, then compare train-mode outputs,
    parameter gradients, updated running statistics and eval-mode outputs: once in float32
    (tolerance 2e-4 of the largest value, 2e-3 for gradients) and once in float64 (1e-9).

    dense: per-pixel targets (segmentation) instead of one class per sample.
    float32_grads=False skips the float32 gradient comparison (see the MobileNetV2 test).
    """
    rng = np.random.default_rng(0)
    randomise_batch_norm(model, rng)
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    target = rng.integers(0, num_classes, size=x.shape[:1] + x.shape[2:] if dense
                          else x.shape[:1])
    passes = [(np.float32, torch.float32, 2e-4, 2e-3 if float32_grads else None, 1e-6),
              (np.float64, torch.float64, 1e-9, 1e-9, 1e-13)]
    for dtype, torch_dtype, tol, grad_tol, atol in passes:
        model.to(dtype)
        reference.to(torch_dtype)
        model.load_state_dict(state, strict=True)
        reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()},
                                  strict=True)
        model.zero_grad()
        reference.zero_grad(set_to_none=True)
        what = np.dtype(dtype).name

        model.train()
        reference.train()
        xt = torch.tensor(x, dtype=torch_dtype)
        out_t = reference(xt)
        out_j = model(juanji.tensor(x.astype(dtype)))
        assert out_j.dtype == dtype
        assert_close(out_j.data, out_t, tol, f"{what} train-mode output")
        tF.cross_entropy(out_t, torch.tensor(target)).backward()
        F.cross_entropy(out_j, juanji.tensor(target)).backward()
        grads_t = {k: p.grad for k, p in reference.named_parameters()}
        for key, p in model.named_parameters():
            assert p.grad is not None, f"{key} got no gradient"
            if grad_tol is not None:
                assert_close(p.grad, grads_t[key], grad_tol, f"{what} grad of {key}", atol)
        state_t = reference.state_dict()
        for key, value in model.state_dict().items():
            if ".running_" in key:
                assert_close(value, state_t[key], tol, f"{what} {key}")
            elif key.endswith("num_batches_tracked"):
                assert int(value) == int(state_t[key]) == 1, key

        model.eval()
        reference.eval()
        with torch.no_grad():
            out_t = reference(xt)
        with juanji.no_grad():
            out_j = model(juanji.tensor(x.astype(dtype)))
        assert_close(out_j.data, out_t, tol, f"{what} eval-mode output")


def test_resnet18_matches_torch():
    from juanji.models.resnet import resnet18

    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    compare(resnet18(num_classes=10), TorchResNet18(10), x, 10)


def test_mobilenet_v2_matches_torch():
    from juanji.models.mobilenet import mobilenet_v2

    x = np.random.default_rng(2).standard_normal((4, 3, 64, 64)).astype(np.float32)
    # Gradients are compared in float64 only: with 35 ReLU6 kinks between input and loss, a
    # pre-activation within float32 rounding of 0 or 6 flips its mask and moves some
    # gradients by a few percent. torch's own float32 gradients differ from its float64 ones
    # by up to 3.6% on this batch, at a different layer than juanji's do.
    compare(mobilenet_v2(num_classes=10, dropout=0.0), TorchMobileNetV2(10), x, 10,
            float32_grads=False)


def test_unet_matches_torch():
    from juanji.models.unet import unet

    x = np.random.default_rng(3).standard_normal((2, 1, 32, 32)).astype(np.float32)
    compare(unet(num_classes=3, in_channels=1, width=8, depth=3), TorchUNet(3, 1, 8, 3), x, 3,
            dense=True)


def test_lenet5_matches_torch():
    from juanji.models.lenet import lenet5

    x = np.random.default_rng(4).standard_normal((4, 1, 28, 28)).astype(np.float32)
    compare(lenet5(num_classes=10), TorchLeNet5(), x, 10)
