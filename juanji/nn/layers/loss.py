"""Loss layers: thin wrappers that hold the options and call nn.functional."""

from juanji.nn import functional as F
from juanji.nn.args import one_of
from juanji.nn.module import Module

__all__ = ["CrossEntropyLoss"]


class CrossEntropyLoss(Module):
    """Softmax cross-entropy from logits (N, C) and class indices (N,)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__()
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction = one_of(reduction, "reduction", ("mean", "sum", "none"))

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction)
