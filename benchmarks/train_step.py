"""One training step (forward, backward, SGD update) in juanji and PyTorch, side by side.

    python -m benchmarks.train_step [--repeats 15]

Cases: SimpleConvNet batch 100 (1x28x28) and LeNet-5 batch 128 (1x28x28). Both frameworks run
on 2 threads with identical weights and data; repetitions are interleaved.
"""

import argparse

import numpy as np

from benchmarks.common import (
    report,
    setup_torch,
    train_step_pair,
)
from juanji import models


def torch_simple_convnet(torch):
    nn = torch.nn

    class SimpleConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc1, self.relu2 = nn.Linear(30 * 12 * 12, 100), nn.ReLU()
            self.fc2 = nn.Linear(100, 10)

        def forward(self, x):
            x = self.pool1(self.relu1(self.conv1(x)))
            return self.fc2(self.relu2(self.fc1(self.flatten(x))))

    return SimpleConvNet()


def torch_lenet5(torch):
    nn = torch.nn

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.flatten = nn.Flatten()
            self.classifier = nn.Sequential(
                nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.flatten(self.features(x)))

    return LeNet5()


def step_pair(torch, name, torch_model, batch, repeats):
    """Both sides with the same weights and batch of 1x28x28 images."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    row = train_step_pair(torch, f"train step {name} b{batch}", models.create_model(name),
                          torch_model, x, y, repeats)
    del row["steps"]
    return row


def run(repeats=15):
    torch = setup_torch()
    torch.manual_seed(0)
    rows = [
        step_pair(torch, "simple_convnet", torch_simple_convnet(torch), 100, repeats),
        step_pair(torch, "lenet5", torch_lenet5(torch), 128, repeats),
    ]
    return report(rows, "training step, median ms (min-max), ratio = juanji / torch")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    run(parser.parse_args().repeats)
