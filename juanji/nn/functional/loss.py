"""Loss functions; reduction is one of "mean", "sum", "none"."""

from juanji.nn.args import one_of
from juanji.ops import loss
from juanji.tensor import as_tensor

__all__ = ["cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Fused log-softmax + NLL. input (N, C) or (N, C, d...), target int (N,) or (N, d...)."""
    input, target = as_tensor(input), as_tensor(target)
    one_of(reduction, "reduction", _REDUCTIONS)
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"cross_entropy expects input (N, C, ...) and target (N, ...); got "
                         f"input {tuple(input.shape)} and target {tuple(target.shape)}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy expects integer class targets; got {target.dtype}")
    w = None if weight is None else as_tensor(weight).data
    return loss.CrossEntropy.apply(input, target, weight=w, ignore_index=ignore_index,
                                   reduction=reduction)
