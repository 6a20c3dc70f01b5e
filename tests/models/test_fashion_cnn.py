"""fashion_cnn: parameters counted by hand, equal to a plain torch.nn twin (outputs, gradients,
running statistics), input-size handling, learning, and the registry's training recipes."""

import numpy as np
import pytest
import torch
from test_learning import images, labels, overfit
from test_torch_parity import compare

from juanji import optim
from juanji.data.transforms import build_augmentation
from juanji.models import MODELS, RECIPES, recipe
from juanji.models.fashion_cnn import fashion_cnn

tnn = torch.nn


class TorchFashionCNN(tnn.Module):
    """fashion_cnn's default layout (dropout 0) in plain torch.nn, with the same key names."""

    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()

        def block(cin, cout):
            return tnn.Sequential(tnn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                  tnn.BatchNorm2d(cout), tnn.ReLU(), tnn.MaxPool2d(2),
                                  tnn.Dropout(0.0))

        self.features = tnn.Sequential(block(in_channels, 32), block(32, 64))
        self.flatten = tnn.Flatten()
        self.classifier = tnn.Sequential(tnn.Linear(64 * 7 * 7, 256, bias=False),
                                         tnn.BatchNorm1d(256), tnn.ReLU(), tnn.Dropout(0.0),
                                         tnn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(self.flatten(self.features(x)))


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_by_hand():
    convs = 1 * 32 * 9 + 64 * 32 * 9  # 3x3 convs without bias (a BN follows)
    bns = 2 * 32 + 2 * 64 + 2 * 256  # gamma and beta
    linears = 64 * 7 * 7 * 256 + 256 * 10 + 10
    assert count(fashion_cnn()) == convs + bns + linears == 824810
    # two convs per block add a 32->32 and a 64->64 conv with their BNs
    assert count(fashion_cnn(convs=2)) == 824810 + 32 * 32 * 9 + 64 + 64 * 64 * 9 + 128


def test_matches_torch():
    x = np.random.default_rng(5).standard_normal((4, 1, 28, 28)).astype(np.float32)
    compare(fashion_cnn(dropout=0.0), TorchFashionCNN(), x, 10)


def test_shapes_for_other_inputs_and_argument_errors():
    import juanji

    model = fashion_cnn(num_classes=5, in_channels=3, input_size=(32, 24))
    model.eval()
    with juanji.no_grad():
        assert model(juanji.tensor(np.zeros((2, 3, 32, 24), np.float32))).shape == (2, 5)
    with pytest.raises(ValueError, match=r"input_size must be an int or \(H, W\) pair of "
                                         r"multiples of 4 .*got input_size=30"):
        fashion_cnn(input_size=30)
    with pytest.raises(ValueError, match=r"widths must be a non-empty sequence of positive ints"):
        fashion_cnn(widths=())
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 0.5\)"):
        fashion_cnn(dropout=0.5)
    with pytest.raises(ValueError, match="convs must be a positive int; got convs=0"):
        fashion_cnn(convs=0)


def test_overfits_a_small_batch():
    model = fashion_cnn(widths=(8, 16), hidden=32, dropout=0.0)
    losses = overfit(model, images(20, 1, 28), labels(20, 10), steps=40)
    assert losses[-1] < 0.1 * losses[0]


def test_recipes_name_registered_models_optimizers_schedules_and_augmentations():
    assert RECIPES["lenet5"] == {"epochs": 3, "optimizer": "adam", "lr": 2e-3,
                                 "weight_decay": 0.0, "scheduler": "cosine", "batch_size": 64,
                                 "augment": "none"}
    for name, settings in RECIPES.items():
        assert name in MODELS
        assert settings["optimizer"] in optim.OPTIMIZERS
        assert settings["scheduler"] in optim.SCHEDULERS
        build_augmentation(settings["augment"], 28)
        assert isinstance(settings["epochs"], int) and settings["epochs"] >= 1
    got = recipe("fashion_cnn")
    got["epochs"] = -1  # a copy
    assert RECIPES["fashion_cnn"]["epochs"] >= 1
    assert recipe("vgg11") == {}
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        recipe("nope")
