"""ResNet-20 in DeZero (the framework of "Deep Learning from Scratch 3", PyPI `dezero`), for the
issue-17 comparison of training-step speed against juanji.

    python -m benchmarks.dezero_models

Benchmark-only dependency, not a project one: `pip install dezero==0.0.13` (the version these
numbers were taken with).

The network is `juanji.models.resnet20` (He et al., 2016, Section 4.2): 3x3 convs without bias,
batch norm in training mode, ReLU, three stages of three basic blocks at 16/32/64 channels,
shortcut option A (stride-2 subsampling plus zero channels), global average pool, linear 64->10.
It is built from DeZero's own layers and functions; DeZero has no concatenation, so `Concat`
below is the smallest one written with DeZero's Function API. Differences that do not change the
work per step: DeZero's BatchNorm uses eps=2e-5 (juanji 1e-5) and its own weight init.

DeZero 0.0.13 was written for NumPy 1. Under NumPy 2 it needs three workarounds, all here and
none in DeZero's files: the `np.int` alias during its import, and, so that it trains in float32
as it did under NumPy 1 instead of silently in float64, float32 weights after construction
(`build_resnet20`) and NumPy 1's promotion of Python scalars during the step (`numpy1_scalars`).
Its labels go in as uint8 (see `dezero_resnet20_step`).
"""

import contextlib

import numpy as np

# dezero 0.0.13's transforms.py evaluates `np.int` (removed in NumPy 1.24) as a default argument
# at import. Give NumPy the alias for the import only, then take it away again.
np.int = int
try:
    import dezero
    import dezero.functions as F
    import dezero.layers as L
finally:
    del np.int

CIFAR_WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 3


class Concat(dezero.Function):
    """Concatenate variables along `axis`; the gradient of each is its slice of gy."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[self.axis]
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(start, stop)
            grads.append(F.get_item(gy, tuple(index)))
            start = stop
        return tuple(grads)


class PadShortcut(dezero.Layer):
    """Option A: (N, C, H, W) -> (N, C + extra, H / stride, W / stride), no parameters."""

    def __init__(self, extra_channels, stride):
        super().__init__()
        self.extra_channels, self.stride = extra_channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C, OH, OW)
        n, _, h, w = x.shape
        zeros = np.zeros((n, self.extra_channels, h, w), dtype=x.dtype)
        return Concat(axis=1)(x, zeros)  # (N, C + extra, OH, OW)


class BasicBlock(dezero.Layer):
    """x -> conv-bn-relu -> conv-bn -> + shortcut(x) -> relu; (N, cin, H, W) -> (N, cout, ...)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = L.Conv2d(cout, 3, stride, pad=1, nobias=True, in_channels=cin)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(cout, 3, 1, pad=1, nobias=True, in_channels=cout)
        self.bn2 = L.BatchNorm()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = PadShortcut(cout - cin, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + identity)


class ResNet20(dezero.Model):
    """CIFAR ResNet-20: (N, 3, 32, 32) -> (N, num_classes) logits."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = L.Conv2d(CIFAR_WIDTHS[0], 3, 1, pad=1, nobias=True, in_channels=3)
        self.bn1 = L.BatchNorm()
        self.blocks = []
        cin = CIFAR_WIDTHS[0]
        for i, width in enumerate(CIFAR_WIDTHS):
            for j in range(BLOCKS_PER_STAGE):
                block = BasicBlock(cin, width, 2 if i > 0 and j == 0 else 1)
                setattr(self, f"layer{i + 1}_{j}", block)  # registers its parameters
                self.blocks.append(block)
                cin = width
        self.fc = L.Linear(num_classes, in_size=cin)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for block in self.blocks:
            x = block(x)
        x = F.average_pooling(x, x.shape[2])  # (N, 64, 1, 1)
        return self.fc(F.reshape(x, (x.shape[0], -1)))  # (N, num_classes)


def parameter_count(model):
    """Trainable parameters of a built DeZero model. BatchNorm's running statistics are
    Parameters in DeZero (named avg_mean, avg_var) but never trained; they are left out, as
    juanji's buffers are."""
    return sum(p.data.size for p in model.params() if p.name not in ("avg_mean", "avg_var"))


def build_resnet20(num_classes=10):
    """A DeZero ResNet-20 with every parameter allocated, checked against juanji's resnet20.

    DeZero's BatchNorm sizes its parameters at the first call, so one image goes through in
    test mode without a graph first (no running statistic changes).
    """
    from juanji.models import create_model

    model = ResNet20(num_classes)
    # DeZero initialises conv and linear weights as float32 * np.sqrt(...); under NumPy 2's
    # promotion rules (NEP 50) the float64 scalar wins, and the whole step would run in float64.
    # Cast back to the float32 DeZero asks for (as NumPy 1 gave it), as juanji and torch run.
    for p in model.params():
        if p.data is not None:
            p.data = p.data.astype(np.float32)
    with dezero.test_mode(), dezero.no_grad():
        model(np.zeros((1, 3, 32, 32), dtype=np.float32))
    juanji_model = create_model("resnet20", num_classes=num_classes)
    expected = sum(p.numel() for p in juanji_model.parameters())
    got = parameter_count(model)
    if got != expected:
        raise AssertionError(f"DeZero ResNet-20 has {got} parameters; juanji's resnet20 has "
                             f"{expected}")
    return model


_as_array = dezero.core.as_array


def _as_array_numpy1(x, array_module=np):
    """dezero.core.as_array with NumPy 1's promotion of Python scalars: a float becomes a
    float32 0-d array, an int one of the smallest integer type that holds it."""
    if type(x) is float:
        return array_module.array(x, dtype=np.float32)
    if type(x) is int:
        return array_module.array(x, dtype=np.min_scalar_type(x))
    return _as_array(x, array_module)


@contextlib.contextmanager
def numpy1_scalars():
    """Run DeZero in float32 as it ran under NumPy 1, for the duration of the block.

    DeZero wraps the Python scalar of `v * 0.5` or `v / batch_size` in a 0-d float64 or int64
    array. NumPy 1 cast a 0-d array by value, so a float32 variable stayed float32; NumPy 2
    (NEP 50) promotes to float64, and softmax cross-entropy's and batch norm's backward would
    turn the whole backward pass into float64 for a float32 network.
    """
    dezero.core.as_array = _as_array_numpy1
    try:
        yield
    finally:
        dezero.core.as_array = _as_array


def dezero_resnet20_step(x, y):
    """x float32 (N, 3, 32, 32), y int64 (N,). Returns a zero-argument callable that runs one
    training step of ResNet-20 in DeZero: forward, softmax cross-entropy, backward, SGD with
    momentum 0.9 (lr 0.01) update."""
    model = build_resnet20()
    opt = dezero.optimizers.MomentumSGD(lr=0.01, momentum=0.9).setup(model)
    # DeZero's softmax cross-entropy builds its one-hot in the labels' dtype: int64 labels would
    # make (softmax - one-hot) float64, and with it the whole backward pass. uint8 holds the 10
    # classes and keeps it float32.
    t = y.astype(np.uint8)

    def step():
        # batch norm on batch statistics, float32 throughout
        with dezero.using_config("train", True), numpy1_scalars():
            model.cleargrads()
            F.softmax_cross_entropy(model(x), t).backward()
            opt.update()

    return step


if __name__ == "__main__":
    import statistics

    from benchmarks.common import interleaved, juanji_train_step
    from juanji.models import create_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    times = interleaved({"dezero": dezero_resnet20_step(x, y),
                         "juanji": juanji_train_step(create_model("resnet20"), x, y)},
                        warmup=2, repeats=5)
    dezero_ms, juanji_ms = (statistics.median(times[k]) * 1e3 for k in ("dezero", "juanji"))
    print(f"ResNet-20 training step, batch 128, dezero {dezero.__version__}: "
          f"dezero {dezero_ms:.0f} ms, juanji {juanji_ms:.0f} ms (medians of 5), "
          f"juanji {dezero_ms / juanji_ms:.1f}x faster")
