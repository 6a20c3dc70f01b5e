"""Structural layers: reshaping (Unflatten), channel shuffling and squeeze-and-excitation."""

import numbers

from juanji.nn.layers.activation import ReLU, Sigmoid
from juanji.nn.layers.conv import Conv2d
from juanji.nn.layers.pooling import AdaptiveAvgPool2d
from juanji.nn.module import Module
from juanji.tensor import as_tensor

__all__ = ["ChannelShuffle", "SEBlock", "SqueezeExcitation", "Unflatten"]


class Unflatten(Module):
    """Split dim `dim` into `unflattened_size`: e.g. (N, 12) -> (N, 3, 2, 2) with dim=1.

    One entry of unflattened_size may be -1 (inferred); the product must equal the size of dim.
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(dim, numbers.Integral):
            raise ValueError(f"dim must be an int; got {dim!r}")
        size = tuple(unflattened_size) if isinstance(unflattened_size, (tuple, list)) else None
        if (not size or not all(isinstance(n, numbers.Integral) for n in size)
                or sum(n == -1 for n in size) > 1 or any(n < -1 or n == 0 for n in size)):
            raise ValueError(f"unflattened_size must be a non-empty tuple of positive ints (one "
                             f"may be -1); got {unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), tuple(int(n) for n in size)

    def forward(self, x):
        x = as_tensor(x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"Unflatten dim={self.dim} is out of range for an input of shape "
                             f"{tuple(x.shape)}")
        dim = self.dim % x.ndim
        size, known = x.shape[dim], 1
        for n in self.unflattened_size:
            known *= n if n != -1 else 1
        fits = size % known == 0 if -1 in self.unflattened_size else size == known
        if not fits:
            raise ValueError(f"Unflatten cannot split dim {dim} of size {size} into "
                             f"{self.unflattened_size}")
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class ChannelShuffle(Module):
    """Interleave channel groups (ShuffleNet): (N, C, H, W) -> (N, C, H, W).

    Channels viewed as (G, C/G) are transposed to (C/G, G), so output channel j * G + g is
    input channel g * C/G + j: each group of the next grouped convolution sees every group of
    the last one.
    """

    def __init__(self, groups):
        super().__init__()
        if not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"groups must be a positive int; got {groups!r}")
        self.groups = int(groups)

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim < 3:
            raise ValueError(f"ChannelShuffle expects an (N, C, *) input; got shape "
                             f"{tuple(x.shape)}")
        n, c, rest = x.shape[0], x.shape[1], x.shape[2:]
        g = self.groups
        if c % g:
            raise ValueError(f"ChannelShuffle needs channels divisible by groups; got "
                             f"{c} channels, groups={g}")
        grouped = x.reshape((n, g, c // g) + rest)  # (N, G, C/G, *)
        axes = (0, 2, 1) + tuple(range(3, grouped.ndim))
        return grouped.permute(axes).reshape(x.shape)  # (N, C/G, G, *) -> (N, C, *)

    def extra_repr(self):
        return f"groups={self.groups}"


class SqueezeExcitation(Module):
    """Squeeze-and-excitation gate (Hu et al., 2018), torchvision's layout and child names.

    (N, C, H, W) -> (N, C, H, W): s = scale_activation(fc2(activation(fc1(avgpool(x))))),
    out = x * s, with avgpool = AdaptiveAvgPool2d(1) (the squeeze, (N, C, 1, 1)), fc1: 1x1 conv
    C -> squeeze_channels, fc2: 1x1 conv back to C. Children and state_dict keys are
    torchvision's (fc1.weight, fc1.bias, fc2.weight, fc2.bias). `activation` and
    `scale_activation` are classes, called with no arguments.
    """

    floating_input = True

    def __init__(self, input_channels, squeeze_channels, activation=ReLU,
                 scale_activation=Sigmoid):
        super().__init__()
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc1 = Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, x):
        s = self.avgpool(x)  # (N, C, 1, 1)
        return self.scale_activation(self.fc2(self.activation(self.fc1(s))))

    def forward(self, x):
        x = as_tensor(x)
        if x.ndim != 4:
            raise ValueError(f"SqueezeExcitation expects an (N, C, H, W) input; got shape "
                             f"{tuple(x.shape)}")
        return self._scale(x) * x


SEBlock = SqueezeExcitation
