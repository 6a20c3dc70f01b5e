"""SimpleConvNet, the seeds' first CNN (from 'Deep Learning from Scratch', ch. 7).

conv 30@5x5 -> ReLU -> max-pool 2x2 -> affine 100 -> ReLU -> affine num_classes, on 1x28x28.
"""

from juanji import nn
from juanji.arithmetic import conv_output_size
from juanji.models.validation import check_model_args

DEFAULT_INPUT = {"simple_convnet": (1, 28, 28)}


class SimpleConvNet(nn.Module):
    """(N, C, H, W) -> (N, num_classes). Layer names: conv1, relu1, pool1, fc1, relu2, fc2."""

    def __init__(self, num_classes=10, in_channels=1, input_size=28, filters=30, hidden=100):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        pooled = conv_output_size(input_size, 5) // 2
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(filters * pooled * pooled, hidden)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))  # (N, 30, 12, 12) for 28x28
        return self.fc2(self.relu2(self.fc1(self.flatten(x))))


def simple_convnet(num_classes=10, in_channels=1, input_size=28):
    """The seeds' SimpleConvNet; expects (N, in_channels, input_size, input_size), default 28."""
    check_model_args(num_classes, in_channels)
    if input_size < 6:
        raise ValueError(f"input_size must be >= 6 for a 5x5 conv and a 2x2 pool; got {input_size}")
    return SimpleConvNet(num_classes, in_channels, input_size)


FACTORIES = {"simple_convnet": simple_convnet}
