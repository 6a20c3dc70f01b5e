"""Dropout layers."""

from juanji.nn import functional as F
from juanji.nn.args import one_of, probability
from juanji.nn.module import Module

__all__ = ["Dropout"]


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
