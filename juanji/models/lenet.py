"""LeNet-5 (LeCun et al., 1998, 'Gradient-based learning applied to document recognition').

C1 conv 6@5x5 -> S2 pool 2 -> C3 conv 16@5x5 -> S4 pool 2 -> F5 120 -> F6 84 -> output.
The paper's input is 32x32; for 28x28 (MNIST as stored) C1 pads by 2 so every later shape is
the paper's. The default is the modern reading (ReLU, max-pool); `activation='tanh'` with
`pool='avg'` is closer to the original's squashing units and sub-sampling.
"""

from juanji import nn
from juanji.models.validation import check_model_args

DEFAULT_INPUT = {"lenet5": (1, 28, 28)}

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet5(nn.Module):
    """(N, C, 28 or 32, same) -> (N, num_classes). Children: features, classifier."""

    def __init__(self, num_classes=10, in_channels=1, input_size=28, activation="relu",
                 pool="max"):
        super().__init__()
        act, pooling = _ACTIVATIONS[activation], _POOLS[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0),  # (N, 6, 28, 28)
            act(),
            pooling(2),  # (N, 6, 14, 14)
            nn.Conv2d(6, 16, 5),  # (N, 16, 10, 10)
            act(),
            pooling(2),  # (N, 16, 5, 5)
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def lenet5(num_classes=10, in_channels=1, input_size=28, activation="relu", pool="max"):
    """LeNet-5 for 28x28 (padded C1) or 32x32 (the paper's layout) inputs."""
    check_model_args(num_classes, in_channels)
    if input_size not in (28, 32):
        raise ValueError(f"input_size must be 28 or 32 for lenet5; got {input_size!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}; got {activation!r}")
    if pool not in _POOLS:
        raise ValueError(f"pool must be one of {list(_POOLS)}; got {pool!r}")
    return LeNet5(num_classes, in_channels, input_size, activation, pool)


FACTORIES = {"lenet5": lenet5}
