"""The bad-input catalogue: every entry is one wrong thing a user can do, and the answer juanji
must give (the exception type, or the CLI's exit status, and words its message must contain).

A ``Case`` is data: ``call(tmp_path)`` does the bad thing. API, data, image and checkpoint
calls raise; a CLI call (``error`` is an exit status) returns the argv for ``juanji.cli.main``
after writing whatever bad file it needs under ``tmp_path``. ``run=True`` cases find a copy of a
small trained run folder at ``tmp_path / "run"`` (made once per session by the test's fixture).
``{tmp}`` in an argument or a word stands for ``tmp_path``.

``defect`` marks a case where juanji does not yet answer as it should (the case states what
SHOULD happen; run as a strict xfail); ``pending`` one whose fix is being written (a non-strict
xfail, to flip when it lands). tests/reliability/test_catalogue.py runs them all.
"""

import gzip
import hashlib
import io
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import juanji
import juanji.nn.functional as F
from juanji import nn, optim
from juanji.data import CIFAR10, MNIST, ArrayDataset, DataLoader, FashionMNIST
from juanji.data.datasets import DatasetNotFoundError, read_cifar10_batch
from juanji.data.idx import IDXError, read_idx, write_idx
from juanji.data.transforms import Normalize, RandomCrop, RandomHorizontalFlip, ToFloat
from juanji.io.checkpoint import CheckpointError, load_run, load_state, save_state
from juanji.models import create_model
from juanji.optim import lr_scheduler as sched
from juanji.viz.images import ImageTooLargeError, make_grid, read_image, to_uint8, write_image

AREAS = ("api", "cli", "data", "images", "checkpoints")
USAGE, RUNTIME = 2, 1  # the CLI's exit statuses for a usage error and a runtime error


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    call: Callable[[Path], object]
    error: type | int  # an exception class, or (CLI) the exit status
    words: tuple = ()
    run: bool = False  # needs a copy of the trained run at tmp_path / "run"
    defect: str = ""  # known defect: what SHOULD happen is catalogued (strict xfail)
    pending: str = ""  # a fix under way (non-strict xfail)

    @property
    def is_cli(self):
        return isinstance(self.error, int)


CASES = []


def case(area, name, call, error, *words, **options):
    CASES.append(Case(area, name, call, error, tuple(words), **options))


def cli(*argv):
    """A CLI call: argv with {tmp} filled in."""
    return lambda tmp: [a.format(tmp=tmp) for a in argv]


def calls(fn, *args, **kwargs):
    return lambda tmp: fn(*args, **kwargs)


def t(*shape, dtype="float32"):
    return juanji.Tensor(np.zeros(shape, dtype=dtype))


def params():
    return [nn.Parameter(np.zeros(2, "float32"))]


def sgd():
    return optim.SGD(params(), lr=0.1)


def write(tmp, name, data):
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- API: layer constructors ---------------------------------------------------------------

case("api", "conv2d-groups-not-dividing-in-channels", calls(nn.Conv2d, 6, 8, 3, groups=4),
     ValueError, "groups", "in_channels=6", "groups=4")
case("api", "conv2d-groups-not-dividing-out-channels", calls(nn.Conv2d, 4, 6, 3, groups=4),
     ValueError, "groups", "out_channels=6")
case("api", "conv2d-kernel-size-0", calls(nn.Conv2d, 1, 1, 0), ValueError, "kernel_size", "0")
case("api", "conv2d-stride-0", calls(nn.Conv2d, 1, 1, 3, stride=0), ValueError, "stride", "0")
case("api", "conv2d-negative-padding", calls(nn.Conv2d, 1, 1, 3, padding=-1), ValueError,
     "padding", "-1")
case("api", "conv2d-padding-mode-foo", calls(nn.Conv2d, 1, 1, 3, padding_mode="foo"),
     ValueError, "padding_mode", "foo")
case("api", "conv2d-dilation-0", calls(nn.Conv2d, 1, 1, 3, dilation=0), ValueError,
     "dilation", "0")
case("api", "conv2d-in-channels-0", calls(nn.Conv2d, 0, 4, 3), ValueError, "in_channels", "0")
case("api", "conv2d-padding-same-with-stride", calls(nn.Conv2d, 1, 1, 3, stride=2,
                                                     padding="same"),
     ValueError, "padding='same'", "stride")
case("api", "conv2d-padding-string-foo", calls(nn.Conv2d, 1, 1, 3, padding="foo"), ValueError,
     "padding", "foo")
case("api", "conv-transpose2d-output-padding-too-big",
     calls(nn.ConvTranspose2d, 1, 1, 3, stride=2, output_padding=2), ValueError,
     "output_padding", "stride")
case("api", "maxpool2d-kernel-0", calls(nn.MaxPool2d, 0), ValueError, "kernel_size", "0")
case("api", "maxpool2d-stride-0", calls(nn.MaxPool2d, 2, stride=0), ValueError, "stride", "0")
case("api", "maxpool2d-padding-over-half-kernel", calls(nn.MaxPool2d, 2, padding=2), ValueError,
     "padding", "half")
case("api", "avgpool2d-padding-over-half-kernel", calls(nn.AvgPool2d, 3, padding=2), ValueError,
     "padding", "half")
case("api", "batchnorm2d-num-features-0", calls(nn.BatchNorm2d, 0), ValueError, "num_features",
     "0")
case("api", "groupnorm-groups-not-dividing", calls(nn.GroupNorm, 3, 8), ValueError,
     "num_groups", "num_channels")
case("api", "linear-in-features-negative", calls(nn.Linear, -1, 3), ValueError, "in_features",
     "-1")
case("api", "linear-out-features-negative", calls(nn.Linear, 3, -2), ValueError,
     "out_features", "-2")
case("api", "dropout-p-1.5", calls(nn.Dropout, p=1.5), ValueError, "p", "1.5")
case("api", "dropout-p-negative", calls(nn.Dropout, p=-0.1), ValueError, "p", "-0.1")
case("api", "dropout2d-p-2", calls(nn.Dropout2d, p=2.0), ValueError, "p", "2")
case("api", "flatten-end-before-start", lambda tmp: nn.Flatten(2, 1)(t(2, 3, 4, 5)), ValueError,
     "start_dim", "end_dim")
case("api", "flatten-dim-out-of-range", lambda tmp: nn.Flatten(5)(t(2, 3, 4, 5)), IndexError,
     "dim", "5")
case("api", "upsample-mode-foo", lambda tmp: nn.Upsample(scale_factor=2, mode="foo")(t(1, 1, 2, 2)),
     ValueError, "mode", "foo")
case("api", "upsample-size-and-scale", lambda tmp: nn.Upsample(size=4, scale_factor=2)(
    t(1, 1, 2, 2)), ValueError, "size", "scale_factor")
case("api", "upsample-neither-size-nor-scale", lambda tmp: nn.Upsample()(t(1, 1, 2, 2)),
     ValueError, "size", "scale_factor")
case("api", "pixel-shuffle-channels-not-divisible",
     lambda tmp: nn.PixelShuffle(2)(t(1, 3, 2, 2)), ValueError, "upscale_factor", "3")
case("api", "channel-shuffle-groups-not-dividing",
     lambda tmp: nn.ChannelShuffle(4)(t(1, 6, 2, 2)), ValueError, "groups", "6")
case("api", "interpolate-mode-foo", lambda tmp: F.interpolate(t(1, 1, 2, 2), scale_factor=2,
                                                              mode="foo"),
     ValueError, "mode", "foo")
case("api", "cross-entropy-loss-reduction-foo", calls(nn.CrossEntropyLoss, reduction="foo"),
     ValueError, "reduction", "foo")
case("api", "cross-entropy-label-smoothing-1.5", calls(nn.CrossEntropyLoss, label_smoothing=1.5),
     ValueError, "label_smoothing", "1.5")

# ---- API: forward with the wrong input -----------------------------------------------------

case("api", "conv2d-forward-2d-input", lambda tmp: nn.Conv2d(3, 4, 3)(t(2, 3)), ValueError,
     "conv2d", "(N, C, H, W)", "(2, 3)")
case("api", "conv2d-forward-5d-input", lambda tmp: nn.Conv2d(3, 4, 3)(t(1, 1, 3, 8, 8)),
     ValueError, "conv2d", "(N, C, H, W)", "(1, 1, 3, 8, 8)")
case("api", "conv2d-forward-wrong-channels", lambda tmp: nn.Conv2d(3, 4, 3)(t(1, 1, 8, 8)),
     ValueError, "3", "1")
case("api", "conv2d-forward-input-smaller-than-kernel",
     lambda tmp: nn.Conv2d(1, 1, 5)(t(1, 1, 3, 3)), ValueError, "kernel", "3")
case("api", "linear-forward-wrong-features", lambda tmp: nn.Linear(4, 2)(t(3, 5)), ValueError,
     "4", "5")
case("api", "batchnorm2d-forward-wrong-channels", lambda tmp: nn.BatchNorm2d(3)(t(2, 4, 2, 2)),
     ValueError, "3", "4")
case("api", "batchnorm2d-forward-2d-input", lambda tmp: nn.BatchNorm2d(3)(t(2, 3)), ValueError,
     "BatchNorm2d", "(N, C, H, W)", "(2, 3)")
case("api", "maxpool2d-output-too-small", lambda tmp: nn.MaxPool2d(3)(t(1, 1, 2, 2)),
     ValueError, "kernel_size=3", "2")
case("api", "softmax-dim-out-of-range", lambda tmp: nn.Softmax(dim=3)(t(2, 3)), ValueError,
     "dim", "3")
case("api", "conv2d-int64-input", lambda tmp: nn.Conv2d(1, 1, 3)(t(1, 1, 4, 4, dtype="int64")),
     TypeError, "Conv2d", "int64")
case("api", "conv2d-uint8-input", lambda tmp: nn.Conv2d(1, 1, 3)(t(1, 1, 4, 4, dtype="uint8")),
     TypeError, "Conv2d", "uint8")
case("api", "conv2d-bool-input", lambda tmp: nn.Conv2d(1, 1, 3)(t(1, 1, 4, 4, dtype="bool")),
     TypeError, "Conv2d", "bool")
case("api", "conv2d-object-input", lambda tmp: nn.Conv2d(1, 1, 3)(t(1, 1, 4, 4, dtype=object)),
     TypeError, "Conv2d", "object")
case("api", "linear-int32-input", lambda tmp: nn.Linear(3, 2)(t(2, 3, dtype="int32")),
     TypeError, "Linear", "int32")
case("api", "batchnorm2d-uint8-input",
     lambda tmp: nn.BatchNorm2d(1)(t(2, 1, 2, 2, dtype="uint8")), TypeError, "BatchNorm2d",
     "uint8")

# ---- API: losses -----------------------------------------------------------------------------

case("api", "cross-entropy-batch-mismatch",
     lambda tmp: F.cross_entropy(t(4, 10), np.zeros(3, "int64")), ValueError, "4", "3")
case("api", "cross-entropy-label-out-of-range",
     lambda tmp: F.cross_entropy(t(2, 10), np.array([0, 10])), ValueError, "[0, 9]", "10")
case("api", "cross-entropy-negative-label",
     lambda tmp: F.cross_entropy(t(2, 10), np.array([0, -5])), ValueError, "[0, 9]", "-5")
case("api", "nll-loss-batch-mismatch",
     lambda tmp: F.nll_loss(t(4, 10), np.zeros(5, "int64")), ValueError, "4", "5")
case("api", "mse-loss-shape-mismatch", lambda tmp: F.mse_loss(t(4, 3), t(5, 3)), ValueError,
     "mse_loss", "(4, 3)", "(5, 3)")
case("api", "l1-loss-shape-mismatch", lambda tmp: F.l1_loss(t(4, 3), t(2, 3)), ValueError,
     "l1_loss", "(4, 3)", "(2, 3)")
case("api", "bce-input-outside-0-1",
     lambda tmp: F.binary_cross_entropy(juanji.tensor(np.array([1.5], "float32")),
                                        juanji.tensor(np.array([1.0], "float32"))),
     ValueError, "input", "[0, 1]", "1.5")
case("api", "bce-target-outside-0-1",
     lambda tmp: F.binary_cross_entropy(juanji.tensor(np.array([0.5], "float32")),
                                        juanji.tensor(np.array([2.0], "float32"))),
     ValueError, "target", "2")
case("api", "bce-with-logits-target-outside-0-1",
     lambda tmp: F.binary_cross_entropy_with_logits(juanji.tensor(np.array([0.5], "float32")),
                                                    juanji.tensor(np.array([-1.0], "float32"))),
     ValueError, "target", "-1")

# ---- API: optimizers -------------------------------------------------------------------------

case("api", "sgd-lr-negative", lambda tmp: optim.SGD(params(), lr=-1), ValueError, "lr", "-1")
case("api", "sgd-lr-nan", lambda tmp: optim.SGD(params(), lr=float("nan")), ValueError, "lr",
     "nan")
case("api", "sgd-lr-inf", lambda tmp: optim.SGD(params(), lr=float("inf")), ValueError, "lr",
     "inf")
case("api", "adam-lr-inf", lambda tmp: optim.Adam(params(), lr=float("inf")), ValueError, "lr",
     "inf")
case("api", "sgd-momentum-negative", lambda tmp: optim.SGD(params(), lr=0.1, momentum=-1),
     ValueError, "momentum", "-1")
case("api", "sgd-nesterov-without-momentum",
     lambda tmp: optim.SGD(params(), lr=0.1, nesterov=True), ValueError, "nesterov", "momentum")
case("api", "sgd-weight-decay-negative",
     lambda tmp: optim.SGD(params(), lr=0.1, weight_decay=-1), ValueError, "weight_decay", "-1")
case("api", "sgd-empty-parameter-list", lambda tmp: optim.SGD([], lr=0.1), ValueError,
     "params", "empty")
case("api", "sgd-params-a-tensor", lambda tmp: optim.SGD(params()[0], lr=0.1), TypeError,
     "iterable", "Parameter")
case("api", "adam-lr-negative", lambda tmp: optim.Adam(params(), lr=-1), ValueError, "lr", "-1")
case("api", "adam-beta1-1.0", lambda tmp: optim.Adam(params(), betas=(1.0, 0.999)), ValueError,
     "beta", "1.0")
case("api", "adam-beta2-negative", lambda tmp: optim.Adam(params(), betas=(0.9, -0.1)),
     ValueError, "beta", "-0.1")
case("api", "adam-eps-negative", lambda tmp: optim.Adam(params(), eps=-1), ValueError, "eps",
     "-1")
case("api", "adamw-weight-decay-negative", lambda tmp: optim.AdamW(params(), weight_decay=-1),
     ValueError, "weight_decay", "-1")
case("api", "rmsprop-alpha-negative", lambda tmp: optim.RMSprop(params(), alpha=-1), ValueError,
     "alpha", "-1")
case("api", "adagrad-lr-decay-negative", lambda tmp: optim.Adagrad(params(), lr_decay=-1),
     ValueError, "lr_decay", "-1")
case("api", "adadelta-rho-1.5", lambda tmp: optim.Adadelta(params(), rho=1.5), ValueError, "rho",
     "1.5")
case("api", "adamax-beta1-negative", lambda tmp: optim.Adamax(params(), betas=(-0.5, 0.9)),
     ValueError, "beta", "-0.5")
case("api", "nadam-lr-nan", lambda tmp: optim.NAdam(params(), lr=float("nan")), ValueError, "lr",
     "nan")
case("api", "build-optimizer-unknown", lambda tmp: optim.build_optimizer("nope", params(), 0.1),
     ValueError, "unknown optimizer", "nope")
case("api", "build-optimizer-momentum-with-adam",
     lambda tmp: optim.build_optimizer("adam", params(), 0.1, momentum=0.9), ValueError,
     "momentum", "adam")


def adam_step_with_inf_grad(tmp):
    p = params()
    p[0].grad = np.array([np.inf, 0.0], "float32")
    optim.Adam(p, lr=0.1).step()


def sgd_step_with_nan_grad(tmp):
    p = params()
    p[0].grad = np.array([np.nan, 0.0], "float32")
    optim.SGD(p, lr=0.1).step()


def sgd_step_overflowing(tmp):
    p = params()
    p[0].grad = np.array([1e30, 0.0], "float32")
    optim.SGD(p, lr=1e30).step()


def step_with_wrong_gradient_shape(tmp):
    p = params()
    p[0].grad = np.zeros(3, "float32")
    optim.SGD(p, lr=0.1).step()


case("api", "adam-step-inf-gradient", adam_step_with_inf_grad, optim.NonFiniteStepError,
     "gradient of param_groups[0]['params'][0]", "NaN or Inf", "step 1")
case("api", "sgd-step-nan-gradient", sgd_step_with_nan_grad, optim.NonFiniteStepError,
     "gradient", "NaN or Inf", "changed no parameter")
case("api", "sgd-step-overflows-the-weights", sgd_step_overflowing, optim.NonFiniteStepError,
     "would make", "NaN or Inf", "lr=1e+30")
case("api", "step-gradient-shape-mismatch", step_with_wrong_gradient_shape, ValueError,
     "gradient", "(3,)", "(2,)")

# ---- API: schedulers -------------------------------------------------------------------------

case("api", "steplr-step-size-0", lambda tmp: sched.StepLR(sgd(), step_size=0), ValueError,
     "step_size", "0")
case("api", "exponentiallr-gamma-negative", lambda tmp: sched.ExponentialLR(sgd(), gamma=-1),
     ValueError, "gamma", "-1")
case("api", "cosine-tmax-0", lambda tmp: sched.CosineAnnealingLR(sgd(), T_max=0), ValueError,
     "T_max", "0")
case("api", "cosine-restarts-t0-0", lambda tmp: sched.CosineAnnealingWarmRestarts(sgd(), T_0=0),
     ValueError, "T_0", "0")
case("api", "cosine-restarts-tmult-0.5",
     lambda tmp: sched.CosineAnnealingWarmRestarts(sgd(), T_0=2, T_mult=0.5), ValueError,
     "T_mult", "0.5")
case("api", "onecycle-total-steps-0",
     lambda tmp: sched.OneCycleLR(sgd(), max_lr=0.1, total_steps=0), ValueError, "total_steps",
     "0")


def onecycle_past_the_end(tmp):
    scheduler = sched.OneCycleLR(sgd(), max_lr=0.1, total_steps=2)
    for _ in range(4):
        scheduler.step()


case("api", "onecycle-stepped-past-total", onecycle_past_the_end, ValueError, "total_steps=2")
case("api", "cycliclr-step-size-up-0",
     lambda tmp: sched.CyclicLR(sgd(), base_lr=0.01, max_lr=0.1, step_size_up=0), ValueError,
     "step_size_up", "0")
case("api", "cycliclr-mode-foo",
     lambda tmp: sched.CyclicLR(sgd(), base_lr=0.01, max_lr=0.1, mode="foo"), ValueError, "mode",
     "foo")
case("api", "plateau-mode-foo", lambda tmp: sched.ReduceLROnPlateau(sgd(), mode="foo"),
     ValueError, "mode", "foo")
case("api", "plateau-factor-1", lambda tmp: sched.ReduceLROnPlateau(sgd(), factor=1.0),
     ValueError, "factor", "1.0")
case("api", "linearlr-start-factor-0", lambda tmp: sched.LinearLR(sgd(), start_factor=0),
     ValueError, "start_factor", "0")
case("api", "linearlr-end-factor-2", lambda tmp: sched.LinearLR(sgd(), end_factor=2),
     ValueError, "end_factor", "2")
case("api", "scheduler-of-a-non-optimizer", lambda tmp: sched.StepLR("sgd", step_size=1),
     TypeError, "Optimizer", "str")
case("api", "build-scheduler-unknown", lambda tmp: optim.build_scheduler("nope", sgd(), 10, 3),
     ValueError, "nope")

# ---- API: tensors, autograd, seeds, models ---------------------------------------------------


def backward_non_scalar(tmp):
    x = juanji.tensor(np.ones(3, "float32"), requires_grad=True)
    (x * 2).backward()


def backward_without_grad(tmp):
    juanji.tensor(np.ones(1, "float32")).sum().backward()


def second_backward(tmp):
    x = juanji.tensor(np.ones(3, "float32"), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()


def load_state_dict_missing_key(tmp):
    model = nn.Linear(3, 2)
    model.load_state_dict({"weight": np.zeros((2, 3), "float32")})


def load_state_dict_wrong_shape(tmp):
    model = nn.Linear(3, 2)
    model.load_state_dict({"weight": np.zeros((3, 3), "float32"),
                           "bias": np.zeros(2, "float32")})


case("api", "backward-non-scalar-without-gradient", backward_non_scalar, RuntimeError,
     "scalar")
case("api", "backward-of-a-tensor-without-grad", backward_without_grad, RuntimeError,
     "does not require grad")
case("api", "second-backward-through-freed-graph", second_backward, RuntimeError,
     "second time")
case("api", "reshape-incompatible", lambda tmp: t(2, 3).reshape(4, 2), ValueError, "(2, 3)",
     "(4, 2)")
case("api", "matmul-shape-mismatch", lambda tmp: t(2, 3) @ t(4, 5), ValueError, "(2, 3)",
     "(4, 5)")
case("api", "add-shapes-do-not-broadcast", lambda tmp: t(2, 3) + t(4, 3), ValueError, "(2, 3)",
     "(4, 3)")
case("api", "sum-dim-out-of-range", lambda tmp: t(2, 3).sum(dim=5), IndexError, "dim", "5")
case("api", "cat-empty-list", lambda tmp: juanji.cat([]), ValueError, "cat", "empty")
case("api", "cat-shape-mismatch", lambda tmp: juanji.cat([t(2, 3), t(2, 4)], dim=0), ValueError,
     "(2, 3)", "(2, 4)")
case("api", "tensor-of-strings", lambda tmp: juanji.tensor(["a", "b"]), TypeError, "dtype")
case("api", "manual-seed-negative", lambda tmp: juanji.manual_seed(-1), ValueError, "seed", "-1")
case("api", "manual-seed-too-large", lambda tmp: juanji.manual_seed(2**64), ValueError, "seed",
     str(2**64))
case("api", "load-state-dict-missing-key", load_state_dict_missing_key, KeyError, "bias")
case("api", "load-state-dict-wrong-shape", load_state_dict_wrong_shape, ValueError, "weight",
     "(3, 3)", "(2, 3)")
case("api", "create-model-unknown", lambda tmp: create_model("nope"), ValueError,
     "unknown model", "nope")
case("api", "create-model-num-classes-0", lambda tmp: create_model("lenet5", num_classes=0),
     ValueError, "num_classes", "0")
case("api", "create-model-in-channels-0", lambda tmp: create_model("lenet5", in_channels=0),
     ValueError, "in_channels", "0")
case("api", "resnet18-input-too-small",
     lambda tmp: create_model("resnet20")(t(1, 3, 1, 1)), ValueError, "1")

# ---- data: IDX files -------------------------------------------------------------------------


def idx_bytes(type_code, dims, payload=b""):
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def read_written_idx(name, data):
    """read_idx of a file holding `data` (bytes, or a function making them when called)."""
    return lambda tmp: read_idx(write(tmp, name, data() if callable(data) else data))


case("data", "idx-empty-file", read_written_idx("e.idx", b""), IDXError, "e.idx", "header",
     "4 bytes")
case("data", "idx-two-bytes", read_written_idx("s.idx", b"\0\0"), IDXError, "s.idx", "header")
case("data", "idx-bad-magic", read_written_idx("m.idx", b"\1\2\x08\1" + b"\0" * 8), IDXError,
     "magic", "0x00 0x00")
case("data", "idx-unknown-type", read_written_idx("u.idx", idx_bytes(0x07, [1], b"\0")),
     IDXError, "type code", "0x07")
case("data", "idx-ndim-0", read_written_idx("z.idx", bytes([0, 0, 8, 0])), IDXError, "ndim",
     "0")
case("data", "idx-truncated-header", read_written_idx("h.idx", bytes([0, 0, 8, 3, 0, 0, 0, 2])),
     IDXError, "truncated IDX header", "ndim=3")
case("data", "idx-truncated-payload", read_written_idx("p.idx", idx_bytes(0x08, [4, 4], b"\0" * 7)),
     IDXError, "truncated", "16")
case("data", "idx-trailing-bytes", read_written_idx("t.idx", idx_bytes(0x08, [2], b"\0" * 5)),
     IDXError, "trailing")
case("data", "idx-gzip-bomb",
     read_written_idx("b.idx.gz",
                      lambda: gzip.compress(idx_bytes(0x08, [4], b"\0" * 50_000_000), 1)),
     IDXError, "b.idx.gz", "trailing")
case("data", "idx-corrupt-gzip", read_written_idx("c.idx.gz", b"\x1f\x8b\x08\0garbage" * 4),
     IDXError, "c.idx.gz", "gzip")
case("data", "idx-truncated-gzip",
     read_written_idx("g.idx.gz", gzip.compress(idx_bytes(0x08, [100], b"\1" * 100))[:30]),
     IDXError, "g.idx.gz", "truncated")
case("data", "idx-gzip-truncated-payload",
     read_written_idx("q.idx.gz", gzip.compress(idx_bytes(0x08, [100], b"\1" * 10))), IDXError,
     "q.idx.gz", "truncated")
case("data", "idx-missing-file", lambda tmp: read_idx(tmp / "none.idx"), FileNotFoundError,
     "none.idx")
case("data", "write-idx-float16", lambda tmp: write_idx(tmp / "w.idx", np.zeros(2, "float16")),
     IDXError, "dtype", "float16")
case("data", "write-idx-0d", lambda tmp: write_idx(tmp / "w.idx", np.array(3, "uint8")),
     IDXError, "ndim=0")

# ---- data: dataset folders ---------------------------------------------------------------------


def mnist_files(tmp, images=None, labels=None, prefix="train", folder="mnist"):
    """An MNIST-format folder under tmp/folder with the given arrays (defaults: 2 good
    samples)."""
    folder = tmp / folder
    folder.mkdir(exist_ok=True)
    write_idx(folder / f"{prefix}-images-idx3-ubyte",
              np.zeros((2, 28, 28), "uint8") if images is None else images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte",
              np.zeros(2, "uint8") if labels is None else labels)
    return folder


def empty_folder(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def a_file(tmp):
    return write(tmp, "file.bin", b"x")


def symlink_loop(tmp):
    os.symlink(tmp / "loop", tmp / "loop")
    return tmp / "loop"


case("data", "fashion-mnist-root-missing", lambda tmp: FashionMNIST(root=tmp / "nope"),
     DatasetNotFoundError, "{tmp}/nope")
case("data", "fashion-mnist-root-a-file", lambda tmp: FashionMNIST(root=a_file(tmp)),
     DatasetNotFoundError, "{tmp}/file.bin")
case("data", "fashion-mnist-root-empty", lambda tmp: FashionMNIST(root=empty_folder(tmp)),
     DatasetNotFoundError, "{tmp}/empty", "train-images-idx3-ubyte")
case("data", "fashion-mnist-root-symlink-loop", lambda tmp: FashionMNIST(root=symlink_loop(tmp)),
     DatasetNotFoundError, "{tmp}/loop")
case("data", "mnist-root-missing", lambda tmp: MNIST(root=tmp / "nope"), DatasetNotFoundError,
     "{tmp}/nope")
case("data", "mnist-test-split-missing",
     lambda tmp: MNIST(root=mnist_files(tmp), train=False), DatasetNotFoundError,
     "t10k-images-idx3-ubyte")


def mnist_labels_missing(tmp):
    folder = mnist_files(tmp)
    (folder / "train-labels-idx1-ubyte").unlink()
    return MNIST(root=folder)


case("data", "mnist-labels-file-missing", mnist_labels_missing, DatasetNotFoundError,
     "train-labels-idx1-ubyte")
case("data", "mnist-images-wrong-size",
     lambda tmp: MNIST(root=mnist_files(tmp, images=np.zeros((2, 27, 27), "uint8"))),
     ValueError, "(N, 28, 28)", "(2, 27, 27)")
case("data", "mnist-labels-out-of-range",
     lambda tmp: MNIST(root=mnist_files(tmp, labels=np.array([0, 10], "uint8"))), ValueError,
     "0..9", "10")
case("data", "mnist-count-mismatch",
     lambda tmp: MNIST(root=mnist_files(tmp, labels=np.zeros(3, "uint8"))), ValueError,
     "2 images", "3 labels")
case("data", "mnist-labels-float",
     lambda tmp: MNIST(root=mnist_files(tmp, labels=np.zeros(2, "float32"))), ValueError,
     "uint8 labels", "float32")
case("data", "cifar10-root-missing", lambda tmp: CIFAR10(root=tmp / "nope"),
     DatasetNotFoundError, "{tmp}/nope")
case("data", "cifar10-root-empty", lambda tmp: CIFAR10(root=empty_folder(tmp), train=False),
     DatasetNotFoundError, "test_batch.bin")
case("data", "cifar10-batch-wrong-size",
     lambda tmp: read_cifar10_batch(write(tmp, "test_batch.bin", b"\0" * 3000)), ValueError,
     "test_batch.bin", "3073")
case("data", "cifar10-batch-empty",
     lambda tmp: read_cifar10_batch(write(tmp, "test_batch.bin", b"")), ValueError,
     "test_batch.bin", "non-zero")
case("data", "cifar10-label-out-of-range",
     lambda tmp: read_cifar10_batch(write(tmp, "test_batch.bin", b"\x0c" + b"\0" * 3072)),
     ValueError, "0..9", "12")

# ---- data: loaders, datasets, transforms -------------------------------------------------------


def dataset():
    return ArrayDataset(np.zeros((4, 1, 2, 2), "float32"), np.zeros(4, "int64"))


for bad in (0, -1, 1.5, True, "8"):
    case("data", f"dataloader-batch-size-{bad!r}", calls(lambda b: DataLoader(dataset(), b), bad),
         ValueError, "batch_size", repr(bad))
case("data", "dataloader-no-len", lambda tmp: DataLoader(object(), 2), TypeError, "__len__",
     "object")
case("data", "array-dataset-length-mismatch",
     lambda tmp: ArrayDataset(np.zeros((4, 2)), np.zeros(3, "int64")), ValueError,
     "same length", "4", "3")
case("data", "array-dataset-labels-2d",
     lambda tmp: ArrayDataset(np.zeros((4, 2)), np.zeros((4, 1), "int64")), ValueError,
     "labels", "(4, 1)")
case("data", "array-dataset-labels-float",
     lambda tmp: ArrayDataset(np.zeros((4, 2)), np.zeros(4, "float32")), TypeError, "labels",
     "float32")
case("data", "array-dataset-transform-not-callable",
     lambda tmp: ArrayDataset(np.zeros((4, 2)), np.zeros(4, "int64"), transform=3), TypeError,
     "transform", "int")
case("data", "array-dataset-index-out-of-range", lambda tmp: dataset()[7], IndexError, "7", "4")
case("data", "normalize-length-mismatch", lambda tmp: Normalize((0.5, 0.5), (0.2,)), ValueError,
     "len(mean)", "2")
case("data", "normalize-std-zero", lambda tmp: Normalize(0.5, 0.0), ValueError, "std", "0.0")
case("data", "normalize-mean-nan", lambda tmp: Normalize(float("nan"), 1.0), ValueError, "mean",
     "nan")
case("data", "to-float-int64-images", lambda tmp: ToFloat().batch(np.zeros((2, 2, 2), "int64")),
     TypeError, "ToFloat", "int64")
case("data", "random-flip-p-2", lambda tmp: RandomHorizontalFlip(p=2), ValueError, "p", "2")
case("data", "random-crop-size-0", lambda tmp: RandomCrop(0), ValueError, "size", "0")
case("data", "random-crop-larger-than-image",
     lambda tmp: RandomCrop(8).batch(np.zeros((1, 1, 4, 4), "float32")), ValueError, "size=",
     "4")

# ---- data: the CLI's --data-root -------------------------------------------------------------


def fake_fashion_mnist(folder, n_train=200, n_test=40):
    """A Fashion-MNIST-format folder of random images and labels (the CLI's --data-root)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        mnist_files(folder.parent, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                    rng.integers(0, 10, n, dtype=np.uint8), prefix, folder.name)
    return folder


TRAIN_SMALL = ("train", "--model", "simple_convnet", "--limit", "20", "--epochs", "1",
               "--no-progress", "--out", "{tmp}/runs")


def train_small(*extra):
    """`juanji train` of a tiny run on fake data in {tmp}/data, with `extra` flags."""
    def call(tmp):
        fake_fashion_mnist(tmp / "data")
        return cli(*TRAIN_SMALL, "--data-root", "{tmp}/data", *extra)(tmp)
    return call


def train_with_root(make_root):
    def call(tmp):
        root = make_root(tmp)
        return cli(*TRAIN_SMALL, "--data-root", str(root))(tmp)
    return call


case("data", "cli-data-root-missing", train_with_root(lambda tmp: tmp / "nope"), RUNTIME,
     "{tmp}/nope")
case("data", "cli-data-root-a-file", train_with_root(a_file), RUNTIME, "{tmp}/file.bin")
case("data", "cli-data-root-empty", train_with_root(empty_folder), RUNTIME, "{tmp}/empty",
     "train-images-idx3-ubyte")
case("data", "cli-data-root-symlink-loop", train_with_root(symlink_loop), RUNTIME, "{tmp}/loop")
case("data", "cli-data-root-bad-idx",
     train_with_root(lambda tmp: mnist_files(tmp, images=np.zeros((2, 5), "uint8"))),
     RUNTIME, "train-images-idx3-ubyte", "(2, 5)")


def truncated_idx_root(tmp):
    folder = mnist_files(tmp)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    return folder


case("data", "cli-data-root-truncated-idx", train_with_root(truncated_idx_root), RUNTIME,
     "train-images-idx3-ubyte", "truncated")
case("data", "cli-eval-data-root-missing",
     lambda tmp: ["eval", "--checkpoint", str(tmp / "run"), "--data-root", str(tmp / "nope")],
     RUNTIME, "{tmp}/nope", run=True)

# ---- images ------------------------------------------------------------------------------------


def png_bytes(height=8, width=8, mode="L"):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_header(width, height):
    """The first bytes of a PNG declaring width x height pixels (no pixel data follows)."""
    import zlib

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = b"IDAT" + b"\0" * 16
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
            + struct.pack(">I", zlib.crc32(ihdr)) + struct.pack(">I", 16) + idat
            + struct.pack(">I", zlib.crc32(idat)))


def read_written(name, data, **kwargs):
    return lambda tmp: read_image(write(tmp, name, data), **kwargs)


case("images", "read-too-large", read_written("big.png", png_bytes(20, 20), max_pixels=100),
     ImageTooLargeError, "big.png", "20x20", "100")
case("images", "read-truncated-png", read_written("cut.png", png_bytes(64, 64)[:60]), ValueError,
     "cut.png")
case("images", "read-truncated-jpeg", read_written("cut.jpg", jpeg_bytes()[:200]), ValueError,
     "cut.jpg")
case("images", "read-random-bytes",
     read_written("noise.png", np.random.default_rng(0).bytes(256)), ValueError, "noise.png")
case("images", "read-empty-file", read_written("empty.png", b""), ValueError, "empty.png")
case("images", "read-text-file", read_written("text.png", b"hello, not an image\n"),
     ValueError, "text.png")
case("images", "read-a-folder", lambda tmp: read_image(empty_folder(tmp)), IsADirectoryError,
     "{tmp}/empty")
case("images", "read-missing-file", lambda tmp: read_image(tmp / "none.png"), FileNotFoundError,
     "none.png")
case("images", "read-mode-cmyk", read_written("ok.png", png_bytes(), mode="CMYK"), ValueError,
     "mode", "CMYK")
case("images", "write-unknown-extension",
     lambda tmp: write_image(tmp / "out.xyz", np.zeros((4, 4), "uint8")), ValueError, "out.xyz")
case("images", "to-uint8-scale-foo", lambda tmp: to_uint8(np.zeros((2, 2)), scale="foo"),
     ValueError, "scale", "foo")
case("images", "make-grid-no-tiles", lambda tmp: make_grid([]), ValueError, "at least one tile")
case("images", "make-grid-mixed-sizes",
     lambda tmp: make_grid([np.zeros((2, 2)), np.zeros((3, 3))]), ValueError, "one size")


def filter_cli(*extra, image=None):
    """`juanji filter` on a small PNG (or on `image`, a function writing the input)."""
    def call(tmp):
        path = image(tmp) if image else write(tmp, "in.png", png_bytes(16, 16))
        return ["filter", str(path), *[a.format(tmp=tmp) for a in extra]]
    return call


OUT = ("--out", "{tmp}/out.png")
case("images", "filter-missing-image",
     filter_cli("--kernel", "edge", *OUT, image=lambda tmp: tmp / "none.png"), RUNTIME,
     "none.png")
case("images", "filter-image-a-folder", filter_cli("--kernel", "edge", *OUT, image=empty_folder),
     RUNTIME, "{tmp}/empty")
case("images", "filter-truncated-image",
     filter_cli("--kernel", "edge", *OUT, image=lambda tmp: write(tmp, "c.png", png_bytes()[:40])),
     RUNTIME, "c.png")
case("images", "filter-random-bytes",
     filter_cli("--kernel", "edge", *OUT,
                image=lambda tmp: write(tmp, "r.png", np.random.default_rng(1).bytes(300))),
     RUNTIME, "r.png")
case("images", "filter-too-large-image",
     filter_cli("--kernel", "edge", *OUT,
                image=lambda tmp: write(tmp, "huge.png", png_header(10_000, 10_000))),
     RUNTIME, "huge.png", "too large", "10000x10000", "89478485")
case("images", "filter-decompression-bomb",
     filter_cli("--kernel", "edge", *OUT,
                image=lambda tmp: write(tmp, "bomb.png", png_header(100_000, 100_000))),
     RUNTIME, "bomb.png", "too large", "89478485")
case("images", "read-png-header-over-the-limit",
     read_written("wide.png", png_header(5000, 3), max_pixels=10_000), ImageTooLargeError,
     "wide.png", "5000x3", "10000")
case("images", "filter-kernel-and-weights", filter_cli("--kernel", "edge", "--weights", "1,0",
                                                       *OUT),
     RUNTIME, "--kernel", "--weights")
case("images", "filter-neither-kernel-nor-weights", filter_cli(*OUT), RUNTIME, "--kernel",
     "--weights")
case("images", "filter-unknown-kernel", filter_cli("--kernel", "blur9", *OUT), RUNTIME,
     "blur9", "edge")
case("images", "filter-weights-not-numbers", filter_cli("--weights", "1,a", *OUT), RUNTIME,
     "weights", "1,a")
case("images", "filter-weights-ragged", filter_cli("--weights", "1,2;3", *OUT), RUNTIME,
     "weights", "rectangle")
case("images", "filter-stride-0", filter_cli("--kernel", "edge", "--stride", "0", *OUT),
     RUNTIME, "--stride", "'0'")
case("images", "filter-padding-negative",
     filter_cli("--kernel", "edge", "--padding", "-1", *OUT), RUNTIME, "--padding", "'-1'")
case("images", "filter-padding-huge", filter_cli("--kernel", "edge", "--padding", "100000", *OUT),
     RUNTIME, "would need", "GiB")
case("images", "filter-scale-foo", filter_cli("--kernel", "edge", "--scale", "foo", *OUT),
     RUNTIME, "--scale", "foo")
case("images", "filter-kernel-larger-than-image",
     filter_cli("--weights", ";".join([",".join(["1"] * 20)] * 20), *OUT), RUNTIME, "20x20",
     "16x16")
case("images", "filter-out-unknown-extension",
     filter_cli("--kernel", "edge", "--out", "{tmp}/out.xyz"), RUNTIME, "out.xyz")
case("images", "viz-features-missing-image",
     cli("viz", "features", "--checkpoint", "{tmp}/run", "--image", "{tmp}/none.png"), RUNTIME,
     "none.png", run=True)
case("images", "viz-features-bad-image",
     lambda tmp: ["viz", "features", "--checkpoint", str(tmp / "run"), "--image",
                  str(write(tmp, "bad.png", b"not a png"))], RUNTIME, "bad.png", run=True)
case("images", "viz-receptive-field-bad-image",
     lambda tmp: ["viz", "receptive-field", "lenet5", "--layer", "features.0", "--image",
                  str(write(tmp, "bad.png", b"not a png")), "--out", str(tmp / "rf.png")],
     RUNTIME, "bad.png")

# ---- checkpoints: the library ------------------------------------------------------------------


def edit_run_json(tmp, edit):
    path = tmp / "run" / "run.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


def latest_dir(tmp):
    info = json.loads((tmp / "run" / "run.json").read_text())
    return tmp / "run" / info["checkpoints"][0]["dir"]


def edit_state_json(tmp, edit):
    """Edit the latest checkpoint's state.json and record its new sha256 (a consistent edit)."""
    path = latest_dir(tmp) / "state.json"
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))
    rehash(tmp, "state.json")


def rehash(tmp, name):
    digest = hashlib.sha256((latest_dir(tmp) / name).read_bytes()).hexdigest()
    edit_run_json(tmp, lambda info: info["checkpoints"][0]["files"].update({name: digest}))


def truncate(path, keep=100):
    path.write_bytes(path.read_bytes()[:keep])


def load_edited(edit):
    def call(tmp):
        edit_run_json(tmp, edit)
        return load_run(tmp / "run")
    return call


def load_broken(breaker):
    def call(tmp):
        breaker(latest_dir(tmp))
        return load_run(tmp / "run")
    return call


def setter(*keys, value):
    def edit(info):
        target = info
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


case("checkpoints", "load-run-missing-folder", lambda tmp: load_run(tmp / "nope"),
     CheckpointError, "{tmp}/nope")
case("checkpoints", "load-run-a-file", lambda tmp: load_run(a_file(tmp)), CheckpointError,
     "{tmp}/file.bin", "run folder")
case("checkpoints", "load-run-no-run-json", lambda tmp: load_run(empty_folder(tmp)),
     CheckpointError, "{tmp}/empty", "run.json")


def invalid_json(tmp):
    (tmp / "run" / "run.json").write_text("{not json")
    return load_run(tmp / "run")


case("checkpoints", "load-run-invalid-json", invalid_json, CheckpointError, "run.json",
     "not valid JSON", run=True)
case("checkpoints", "load-run-epoch-99", load_edited(setter("epoch", value=99)), CheckpointError,
     "epoch 99", "latest checkpoint", run=True)
case("checkpoints", "load-run-epoch-abc", load_edited(setter("epoch", value="abc")),
     CheckpointError, "epoch", "'abc'", run=True)
case("checkpoints", "load-run-epoch-null", load_edited(setter("epoch", value=None)),
     CheckpointError, "epoch", "None", run=True)
case("checkpoints", "load-run-epoch-negative", load_edited(setter("epoch", value=-1)),
     CheckpointError, "epoch", "-1", run=True)
case("checkpoints", "load-run-config-null", load_edited(setter("config", value=None)),
     CheckpointError, "config", "None", run=True)
case("checkpoints", "load-run-checkpoints-empty", load_edited(setter("checkpoints", value=[])),
     CheckpointError, "checkpoints", run=True)
case("checkpoints", "load-run-checkpoints-not-a-list",
     load_edited(setter("checkpoints", value="x")), CheckpointError, "checkpoints", "'x'",
     run=True)
case("checkpoints", "load-run-history-too-long",
     load_edited(lambda info: info["history"].append(dict(info["history"][0]))),
     CheckpointError, "history", run=True)


def load_state_edited(edit):
    def call(tmp):
        edit_state_json(tmp, edit)
        return load_run(tmp / "run")
    return call


case("checkpoints", "load-run-unknown-model",
     load_state_edited(setter("config", "model", value="nope")), CheckpointError,
     "unknown model", "nope", run=True)
case("checkpoints", "load-run-model-args-unknown-name",
     load_state_edited(setter("config", "model_args", value={"width": 3})), CheckpointError,
     "model_args", "width", run=True)
case("checkpoints", "load-run-weights-do-not-fit-model-args",
     load_state_edited(setter("config", "model_args", value={"num_classes": 7,
                                                             "in_channels": 1})),
     CheckpointError, "model.safetensors", "does not fit", run=True)
case("checkpoints", "load-run-truncated-model", load_broken(
    lambda d: truncate(d / "model.safetensors")), CheckpointError, "no whole checkpoint",
    "model.safetensors", run=True)
case("checkpoints", "load-run-missing-model", load_broken(
    lambda d: (d / "model.safetensors").unlink()), CheckpointError, "no whole checkpoint",
    "model.safetensors", run=True)
case("checkpoints", "load-run-missing-state-json", load_broken(
    lambda d: (d / "state.json").unlink()), CheckpointError, "no whole checkpoint", "state.json",
    run=True)


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


case("checkpoints", "load-run-model-changed-same-size",
     load_broken(lambda d: flip_last_byte(d / "model.safetensors")), CheckpointError,
     "model.safetensors", "sha256", run=True)
case("checkpoints", "load-run-checkpoint-folder-missing",
     load_broken(lambda d: __import__("shutil").rmtree(d)), CheckpointError,
     "no whole checkpoint", run=True)
case("checkpoints", "load-state-missing-file", lambda tmp: load_state(tmp / "none.safetensors"),
     CheckpointError, "none.safetensors", "not found")
case("checkpoints", "load-state-random-bytes",
     lambda tmp: load_state(write(tmp, "x.safetensors", np.random.default_rng(2).bytes(64))),
     CheckpointError, "x.safetensors", "safetensors")
case("checkpoints", "load-state-empty-file",
     lambda tmp: load_state(write(tmp, "e.safetensors", b"")), CheckpointError, "e.safetensors")

# ---- checkpoints: through the CLI ---------------------------------------------------------------

RESUME = ("train", "--resume", "{tmp}/run", "--no-progress")


def cli_after(prepare, *argv):
    def call(tmp):
        prepare(tmp)
        return cli(*argv)(tmp)
    return call


case("checkpoints", "eval-missing-folder", cli("eval", "--checkpoint", "{tmp}/nope"), RUNTIME,
     "{tmp}/nope")
case("checkpoints", "eval-a-file", lambda tmp: ["eval", "--checkpoint", str(a_file(tmp))],
     RUNTIME, "{tmp}/file.bin")
case("checkpoints", "eval-folder-without-run-json",
     lambda tmp: ["eval", "--checkpoint", str(empty_folder(tmp))], RUNTIME, "run.json")
case("checkpoints", "eval-truncated-model",
     cli_after(lambda tmp: truncate(latest_dir(tmp) / "model.safetensors"),
               "eval", "--checkpoint", "{tmp}/run"),
     RUNTIME, "no whole checkpoint", run=True)


def nan_weights(tmp):
    path = latest_dir(tmp) / "model.safetensors"
    arrays = load_state(path)
    save_state(path, {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v
                      for k, v in arrays.items()})
    rehash(tmp, "model.safetensors")


case("checkpoints", "eval-nan-weights",
     cli_after(nan_weights, "eval", "--checkpoint", "{tmp}/run"), RUNTIME, "non-finite",
     run=True)
case("checkpoints", "resume-changed-batch-size", cli(*RESUME, "--batch-size", "64"), USAGE,
     "cannot change on --resume", "--batch-size 64", "50", run=True)
case("checkpoints", "resume-changed-optimizer", cli(*RESUME, "--optimizer", "sgd"), USAGE,
     "cannot change on --resume", "--optimizer 'sgd'", "'adam'", run=True)
case("checkpoints", "resume-changed-model", cli(*RESUME, "--model", "lenet5"), USAGE,
     "cannot change on --resume", "--model 'lenet5'", "'simple_convnet'", run=True)
case("checkpoints", "resume-changed-seed", cli(*RESUME, "--seed", "3"), USAGE,
     "cannot change on --resume", "--seed 3", run=True)
case("checkpoints", "resume-changed-limit", cli(*RESUME, "--limit", "100"), USAGE,
     "cannot change on --resume", "--limit 100", "200", run=True)
case("checkpoints", "resume-a-file",
     lambda tmp: ["train", "--resume", str(latest_dir(tmp) / "model.safetensors")], RUNTIME,
     "model.safetensors", "run folder", run=True)
case("checkpoints", "resume-missing-folder", cli("train", "--resume", "{tmp}/nope"), RUNTIME,
     "{tmp}/nope")
case("checkpoints", "resume-epoch-99",
     cli_after(lambda tmp: edit_run_json(tmp, setter("epoch", value=99)), *RESUME), RUNTIME,
     "says epoch 99 step 0 but its latest checkpoint", run=True)
case("checkpoints", "resume-epoch-abc",
     cli_after(lambda tmp: edit_run_json(tmp, setter("epoch", value="abc")), *RESUME), RUNTIME,
     "epoch", "'abc'", run=True)
case("checkpoints", "resume-epoch-null",
     cli_after(lambda tmp: edit_run_json(tmp, setter("epoch", value=None)), *RESUME), RUNTIME,
     "epoch", "None", run=True)
case("checkpoints", "resume-config-null",
     cli_after(lambda tmp: edit_run_json(tmp, setter("config", value=None)), *RESUME), RUNTIME,
     "config", run=True)
case("checkpoints", "resume-checkpoints-empty",
     cli_after(lambda tmp: edit_run_json(tmp, setter("checkpoints", value=[])), *RESUME),
     RUNTIME, "checkpoints", run=True)
case("checkpoints", "resume-history-wrong-length",
     cli_after(lambda tmp: edit_run_json(tmp, setter("history", value=[])), *RESUME), RUNTIME,
     "history", run=True)
case("checkpoints", "resume-truncated-only-checkpoint",
     cli_after(lambda tmp: truncate(latest_dir(tmp) / "model.safetensors"), *RESUME), RUNTIME,
     "has no whole checkpoint", run=True)
case("checkpoints", "resume-missing-only-model",
     cli_after(lambda tmp: (latest_dir(tmp) / "model.safetensors").unlink(), *RESUME), RUNTIME,
     "has no whole checkpoint", run=True)
case("checkpoints", "resume-run-json-invalid",
     cli_after(lambda tmp: (tmp / "run" / "run.json").write_text("[1,"), *RESUME), RUNTIME,
     "run.json", "not valid JSON", run=True)
case("checkpoints", "train-name-of-existing-run", train_small("--out", "{tmp}", "--name", "run"),
     RUNTIME, "{tmp}/run", "already holds a run", run=True)
case("checkpoints", "viz-filters-missing-run", cli("viz", "filters", "--checkpoint", "{tmp}/nope"),
     RUNTIME, "{tmp}/nope")
case("checkpoints", "viz-filters-no-run-json",
     lambda tmp: ["viz", "filters", "--checkpoint", str(empty_folder(tmp))], RUNTIME, "run.json")
case("checkpoints", "viz-filters-truncated-model",
     cli_after(lambda tmp: truncate(latest_dir(tmp) / "model.safetensors"),
               "viz", "filters", "--checkpoint", "{tmp}/run", "--out", "{tmp}/f.png"),
     RUNTIME, "model.safetensors", run=True)
case("checkpoints", "viz-features-run-json-invalid",
     cli_after(lambda tmp: (tmp / "run" / "run.json").write_text("{"),
               "viz", "features", "--checkpoint", "{tmp}/run", "--image", "{tmp}/x.png"),
     RUNTIME, "run.json", run=True)

# ---- CLI: train flags (argparse usage errors) ---------------------------------------------------

TRAIN = ("train", "--no-progress", "--out", "{tmp}/runs")
for flag, value, expected in [
    ("--epochs", "0", "> 0"), ("--epochs", "-1", "> 0"), ("--epochs", "abc", "an integer"),
    ("--epochs", "1.5", "an integer"), ("--batch-size", "0", "> 0"),
    ("--batch-size", "x", "an integer"), ("--limit", "0", "> 0"), ("--limit", "-5", "> 0"),
    ("--save-every", "0", "> 0"), ("--lr", "inf", "finite number > 0"),
    ("--lr", "nan", "finite number > 0"), ("--lr", "0", "> 0"), ("--lr", "-1", "> 0"),
    ("--lr", "abc", "a number"), ("--clip-grad", "0", "> 0"),
    ("--clip-grad", "inf", "finite number > 0"), ("--momentum", "-1", ">= 0"),
    ("--momentum", "nan", "finite number >= 0"), ("--weight-decay", "-0.1", ">= 0"),
    ("--weight-decay", "inf", "finite"), ("--l1", "-1", ">= 0"), ("--seed", "-1", ">= 0"),
    ("--seed", "1.5", "an integer"),
]:
    case("cli", f"train{flag}-{value}", cli(*TRAIN, flag, value), USAGE, f"argument {flag}",
         expected, value)
case("cli", "train-data-unknown", cli(*TRAIN, "--data", "svhn"), USAGE, "--data", "svhn")
case("cli", "train-unknown-flag", cli(*TRAIN, "--nope", "3"), USAGE, "--nope")
case("cli", "unknown-command", cli("trian"), USAGE, "trian")
case("cli", "train-unknown-model", train_small("--model", "nope"), RUNTIME, "nope",
     "lenet5")
case("cli", "train-unknown-optimizer", train_small("--optimizer", "nope"), RUNTIME,
     "unknown optimizer", "nope")
case("cli", "train-unknown-scheduler", train_small("--scheduler", "nope"), RUNTIME,
     "nope", "cosine")
case("cli", "train-momentum-with-adam", train_small("--optimizer", "adam", "--momentum",
                                            "0.9"),
     RUNTIME, "momentum", "adam")
case("cli", "train-lr-1e30-diverges",
     train_small("--optimizer", "sgd", "--lr", "1e30", "--limit", "200", "--batch-size", "50"),
     RUNTIME, "diverged", "epoch 1 step 2", "--lr")
case("cli", "train-diverges-in-the-last-step",
     train_small("--optimizer", "sgd", "--lr", "1e30", "--limit", "20"), RUNTIME, "diverged",
     "epoch 1")
case("cli", "eval-batch-size-0", cli("eval", "--checkpoint", "{tmp}/x", "--batch-size", "0"),
     USAGE, "--batch-size", "0")
case("cli", "eval-without-checkpoint", cli("eval"), USAGE, "--checkpoint")

# ---- CLI: summary / explain ---------------------------------------------------------------------

for name, argv, words in [
    ("summary-unknown-model", ("summary", "nope"), ("unknown model", "nope")),
    ("summary-input-zero", ("summary", "lenet5", "--input", "1x0x28"), ("--input", "1x0x28")),
    ("summary-input-abc", ("summary", "lenet5", "--input", "abc"), ("--input", "abc")),
    ("summary-input-two-dims", ("summary", "lenet5", "--input", "28x28"), ("--input", "28x28")),
    ("summary-batch-size-0", ("summary", "lenet5", "--batch-size", "0"), ("--batch-size", "0")),
    ("summary-batch-size-x", ("summary", "lenet5", "--batch-size", "x"), ("--batch-size", "x")),
    ("summary-depth-negative", ("summary", "lenet5", "--depth", "-1"), ("--depth", "-1")),
    ("summary-num-classes-0", ("summary", "lenet5", "--num-classes", "0"),
     ("--num-classes", "0")),
    ("summary-input-too-small", ("summary", "lenet5", "--input", "1x2x2"),
     ("input_size", "got 2")),
    ("explain-unknown-op", ("explain", "fft", "--input", "1x8x8", "--kernel", "3"),
     ("OP", "fft")),
    ("explain-input-bad", ("explain", "conv2d", "--input", "8x8", "--out-channels", "2",
                           "--kernel", "3"), ("--input", "8x8")),
    ("explain-kernel-0", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "2",
                          "--kernel", "0"), ("--kernel", "0")),
    ("explain-kernel-three-dims", ("explain", "conv2d", "--input", "1x8x8", "--out-channels",
                                   "2", "--kernel", "1x2x3"), ("--kernel", "1x2x3")),
    ("explain-padding-negative", ("explain", "conv2d", "--input", "1x8x8", "--out-channels",
                                  "2", "--kernel", "3", "--padding", "-1"),
     ("--padding", "-1")),
    ("explain-dilation-0", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "2",
                            "--kernel", "3", "--dilation", "0"), ("--dilation", "0")),
    ("explain-groups-0", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "2",
                          "--kernel", "3", "--groups", "0"), ("--groups", "0")),
    ("explain-groups-not-dividing", ("explain", "conv2d", "--input", "3x8x8", "--out-channels",
                                     "4", "--kernel", "3", "--groups", "2"),
     ("groups", "3")),
    ("explain-stride-0", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "2",
                          "--kernel", "3", "--stride", "0"), ("--stride", "0")),
    ("explain-out-channels-0", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "0",
                                "--kernel", "3"), ("--out-channels", "0")),
    ("explain-conv-without-out-channels", ("explain", "conv2d", "--input", "1x8x8", "--kernel",
                                           "3"), ("--out-channels", "conv2d")),
    ("explain-conv-ceil-mode", ("explain", "conv2d", "--input", "1x8x8", "--out-channels", "2",
                                "--kernel", "3", "--ceil-mode"), ("--ceil-mode", "pool")),
    ("explain-conv-output-padding", ("explain", "conv2d", "--input", "1x8x8", "--out-channels",
                                     "2", "--kernel", "3", "--output-padding", "1"),
     ("--output-padding", "conv-transpose")),
    ("explain-pool-out-channels", ("explain", "pool", "--input", "1x8x8", "--kernel", "2",
                                   "--out-channels", "3"), ("--out-channels", "pool")),
    ("explain-pool-kind-foo", ("explain", "pool", "--input", "1x8x8", "--kernel", "2", "--kind",
                               "foo"), ("--kind", "foo")),
    ("explain-kernel-larger-than-input", ("explain", "conv2d", "--input", "1x4x4",
                                          "--out-channels", "2", "--kernel", "7"), ("7", "4")),
    ("explain-pool-padding-over-half", ("explain", "pool", "--input", "1x8x8", "--kernel", "2",
                                        "--padding", "2"), ("padding", "2")),
    ("explain-transpose-output-padding-too-big",
     ("explain", "conv-transpose", "--input", "1x4x4", "--out-channels", "1", "--kernel", "3",
      "--stride", "2", "--output-padding", "3"), ("output_padding", "3")),
]:
    case("cli", name, cli(*argv), RUNTIME, *words)
case("cli", "summary-batch-size-huge", cli("summary", "resnet18", "--batch-size", "100000"),
     RUNTIME, "would need", "GiB")

# ---- CLI: viz and lr-plot -----------------------------------------------------------------------

GIF = ("--out", "{tmp}/c.gif")
RF = ("viz", "receptive-field", "lenet5", "--layer", "features.0", "--out", "{tmp}/rf.png")
for name, argv, words in [
    ("viz-conv-input-too-large", ("viz", "conv", "--input", "64x64", *GIF), ("64x64", "32x32")),
    ("viz-conv-input-bad", ("viz", "conv", "--input", "5", *GIF), ("--input", "5")),
    ("viz-conv-kernel-0", ("viz", "conv", "--kernel", "0", *GIF), ("--kernel", "0")),
    ("viz-conv-stride-0", ("viz", "conv", "--stride", "0", *GIF), ("--stride", "0")),
    ("viz-conv-padding-negative", ("viz", "conv", "--padding", "-1", *GIF),
     ("--padding", "-1")),
    ("viz-conv-dilation-0", ("viz", "conv", "--dilation", "0", *GIF), ("--dilation", "0")),
    ("viz-conv-duration-0", ("viz", "conv", "--duration-ms", "0", *GIF),
     ("--duration-ms", "0")),
    ("viz-conv-kernel-larger-than-input", ("viz", "conv", "--kernel", "7", "--input", "5x5",
                                           *GIF), ("7", "5")),
    ("viz-conv-out-not-gif", ("viz", "conv", "--out", "{tmp}/c.png"), ("GIF", "c.png")),
    ("viz-rf-unknown-model", ("viz", "receptive-field", "nope", "--layer", "features.0"),
     ("unknown model", "nope")),
    ("viz-rf-unknown-layer", ("viz", "receptive-field", "lenet5", "--layer", "conv9"),
     ("conv9", "lenet5")),
    ("viz-rf-unit-bad", (*RF, "--unit", "3"), ("--unit", "'3'")),
    ("viz-rf-unit-negative", (*RF, "--unit", "1,-2"), ("--unit", "-2")),
    ("viz-rf-input-bad", (*RF, "--input", "1x28"), ("--input", "1x28")),
    ("lr-plot-scheduler-none", ("lr-plot", "--scheduler", "none", "--out", "{tmp}/lr.png"),
     ("--scheduler none", "nothing to plot")),
    ("lr-plot-scheduler-plateau", ("lr-plot", "--scheduler", "plateau", "--out",
                                   "{tmp}/lr.png"), ("plateau", "metric")),
    ("lr-plot-scheduler-unknown", ("lr-plot", "--scheduler", "nope", "--out", "{tmp}/lr.png"),
     ("nope",)),
    ("lr-plot-optimizer-unknown", ("lr-plot", "--optimizer", "nope", "--out", "{tmp}/lr.png"),
     ("unknown optimizer", "nope")),
    ("lr-plot-lr-nan", ("lr-plot", "--lr", "nan", "--out", "{tmp}/lr.png"), ("lr", "nan")),
]:
    case("cli", name, cli(*argv), RUNTIME, *words)
for flag, value in [("--epochs", "0"), ("--lr", "-1"), ("--steps-per-epoch", "0")]:
    case("cli", f"lr-plot{flag}-{value}", cli("lr-plot", flag, value, "--out", "{tmp}/lr.png"),
         USAGE, flag, value)
case("cli", "lr-plot-out-unknown-extension", cli("lr-plot", "--out", "{tmp}/lr.xyz"), RUNTIME,
     "lr.xyz")
case("cli", "lr-plot-epochs-abc", cli("lr-plot", "--epochs", "abc", "--out", "{tmp}/lr.png"),
     USAGE, "--epochs", "abc")
case("cli", "viz-filters-ncols-0",
     cli("viz", "filters", "--checkpoint", "{tmp}/run", "--ncols", "0", "--out", "{tmp}/f.png"),
     RUNTIME, "--ncols", "0", run=True)
case("cli", "viz-filters-compare-missing",
     cli("viz", "filters", "--checkpoint", "{tmp}/run", "--compare", "{tmp}/nope", "--out",
         "{tmp}/f.png"), RUNTIME, "{tmp}/nope", run=True)
case("cli", "viz-features-unknown-layer",
     lambda tmp: ["viz", "features", "--checkpoint", str(tmp / "run"), "--image",
                  str(write(tmp, "in.png", png_bytes(28, 28))), "--layers", "conv9", "--out",
                  str(tmp / "f.png")], RUNTIME, "conv9", run=True)
case("cli", "viz-features-max-channels-0",
     lambda tmp: ["viz", "features", "--checkpoint", str(tmp / "run"), "--image",
                  str(write(tmp, "in.png", png_bytes(28, 28))), "--max-channels", "0", "--out",
                  str(tmp / "f.png")], RUNTIME, "--max-channels", "0", run=True)
