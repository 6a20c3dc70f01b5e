"""Dropout layers."""

from juanji.nn import functional as F
from juanji.nn.args import one_of, probability
from juanji.nn.module import Module

__all__ = ["AlphaDropout", "Dropout", "Dropout2d"]


class Dropout(Module):
    """Zero each element with probability p while training.

    mode='upscale_in_train' (default, PyTorch): kept values are scaled by 1/(1-p) in training,
    eval is the identity. mode='downscale_in_infer' (Paddle): training only masks, eval scales by
    (1-p). Both give the same expected output.
    """

    def __init__(self, p=0.5, inplace=False, mode="upscale_in_train"):
        super().__init__()
        self.p = probability(p)
        self.inplace = inplace
        self.mode = one_of(mode, "mode", ("upscale_in_train", "downscale_in_infer"))

    def forward(self, x):
        return F.dropout(x, self.p, self.training, mode=self.mode)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode!r}"


class Dropout2d(Module):
    """Zero whole channels (N, C, H, W) -> same shape, each (n, c) map with probability p.

    Kept maps are scaled by 1/(1-p) in training; eval is the identity. Neighbouring pixels of a
    feature map are strongly correlated, so dropping single pixels regularises little; dropping
    the whole map does (Tompson et al., 2015).
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = probability(p)
        self.inplace = inplace

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class AlphaDropout(Module):
    """Dropout that preserves the zero mean and unit variance SELU networks rely on."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = probability(p)
        self.inplace = inplace

    def forward(self, x):
        return F.alpha_dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
