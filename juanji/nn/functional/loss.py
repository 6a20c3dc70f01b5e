"""Loss functions (PyTorch's names, argument order and defaults); reduction is "mean", "sum"
or "none". `size_average` and `reduce` are PyTorch's legacy arguments: when given they are mapped
to a reduction exactly as PyTorch maps them."""

import numbers
import warnings

import numpy as np

from juanji.nn.args import one_of, probability
from juanji.ops import loss
from juanji.tensor import as_tensor

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "contrastive_loss",
    "cosine_embedding_loss", "cross_entropy", "huber_loss", "l1_loss", "margin_ranking_loss",
    "mse_loss", "nll_loss", "pairwise_distance", "smooth_l1_loss", "triplet_margin_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(reduction, size_average=None, reduce=None):
    """Validate `reduction`, or derive it from the legacy size_average / reduce flags."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "none" if not reduce else "mean" if size_average else "sum"
    return one_of(reduction, "reduction", _REDUCTIONS)


def _real(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def _array(value, like):
    """None, or the raw array of `value` in the dtype of tensor `like` (no silent upcast)."""
    if value is None:
        return None
    return as_tensor(value).data.astype(like.dtype, copy=False)


def _class_weight(weight, input, name="weight"):
    if weight is None:
        return None
    w = _array(weight, input)
    c = input.shape[1]
    if w.shape != (c,):
        raise ValueError(f"{name} must have one entry per class, shape ({c},); got {w.shape}")
    return w


def _same_shape(name, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{name} expects target of the input's size; got input "
                         f"{tuple(input.shape)} and target {tuple(target.shape)}")


def _check_unit_targets(name, target):
    """Refuse targets outside [0, 1] (or NaN), reporting the range found: the binary
    cross-entropy of such a target has no minimum, so training on it diverges."""
    y = target.data
    if ((y < 0) | (y > 1) | (y != y)).any():
        numbers = y[y == y]
        found = f"values in [{numbers.min()}, {numbers.max()}]" if numbers.size else "nan"
        if 0 < numbers.size < y.size:
            found += " and nan"
        raise ValueError(f"{name} expects every target in [0, 1]; got target {found}")


def _warn_broadcast(name, input, target):
    if input.shape != target.shape:
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise ValueError(f"{name}: target size {tuple(target.shape)} does not match input "
                             f"size {tuple(input.shape)} and does not broadcast to it") from None
        warnings.warn(f"{name}: target size {tuple(target.shape)} differs from input size "
                      f"{tuple(input.shape)}; they are broadcast, which is rarely intended",
                      UserWarning, stacklevel=3)


def _elementwise_weight(weight, input, name):
    if weight is None:
        return None
    w = _array(weight, input)
    if w.shape != input.shape:
        raise ValueError(f"{name} weight must have the input's size {tuple(input.shape)}; got "
                         f"{w.shape}")
    return w


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Fused log-softmax + negative log-likelihood from logits.

    input: (N, C), (N, C, d1, ...) or unbatched (C,). target: class indices, int (N,) /
    (N, d1, ...) / (); or class probabilities, float, shaped like input. weight: (C,) class
    weights. label_smoothing in [0, 1] mixes the target with the uniform distribution.
    See ops.loss.CrossEntropy for the exact formula and the 'mean' denominators.
    """
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    label_smoothing = probability(label_smoothing, "label_smoothing")
    if input.ndim == 1:  # unbatched (C,)
        out = cross_entropy(input.unsqueeze(0), target.unsqueeze(0), weight, None, ignore_index,
                            None, reduction, label_smoothing)
        return out[0] if reduction == "none" else out
    if input.ndim < 2:
        raise ValueError(f"cross_entropy expects input (N, C, ...) or (C,); got shape "
                         f"{tuple(input.shape)}")
    if target.dtype.kind == "f":
        if target.shape != input.shape:
            raise ValueError(f"cross_entropy with probability targets expects target shaped "
                             f"like input {tuple(input.shape)}; got {tuple(target.shape)}")
    elif target.dtype.kind in "iu":
        if target.shape != input.shape[:1] + input.shape[2:]:
            raise ValueError(f"cross_entropy expects class-index target of shape "
                             f"{input.shape[:1] + input.shape[2:]} for input "
                             f"{tuple(input.shape)}; got {tuple(target.shape)}")
    else:
        raise ValueError(f"cross_entropy expects integer class indices or float probabilities "
                         f"as target; got dtype {target.dtype}")
    return loss.CrossEntropy.apply(input, target.data, weight=_class_weight(weight, input),
                                   ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood: input log-probabilities (N, C, ...) or (C,), target indices."""
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    if input.ndim == 1:
        out = nll_loss(input.unsqueeze(0), target.unsqueeze(0), weight, None, ignore_index, None,
                       reduction)
        return out[0] if reduction == "none" else out
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"nll_loss expects input (N, C, ...) and target (N, ...); got input "
                         f"{tuple(input.shape)} and target {tuple(target.shape)}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss expects integer class targets; got dtype {target.dtype}")
    return loss.NLL.apply(input, target.data, weight=_class_weight(weight, input),
                          ignore_index=ignore_index, reduction=reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1]; logs clamped at -100.

    weight broadcasts against the input; 'mean' divides by the element count.
    """
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    _same_shape("binary_cross_entropy", input, target)
    x = input.data
    outside = (x < 0) | (x > 1) | (x != x)
    if outside.any():
        raise ValueError(f"binary_cross_entropy expects every input in [0, 1] (probabilities; "
                         f"use binary_cross_entropy_with_logits for logits); got "
                         f"{x[outside].reshape(-1)[0]}")
    _check_unit_targets("binary_cross_entropy", target)
    return loss.BinaryCrossEntropy.apply(input, target, weight=_array(weight, input),
                                         reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy, stable for any logits; pos_weight (C,) weighs positives
    per class (last axis), weight broadcasts against the input. Targets must lie in [0, 1]
    (PyTorch accepts others, for which the loss has no minimum: juanji refuses them)."""
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    _same_shape("binary_cross_entropy_with_logits", input, target)
    # PyTorch accepts any target here; juanji refuses them as binary_cross_entropy does
    _check_unit_targets("binary_cross_entropy_with_logits", target)
    return loss.BinaryCrossEntropyWithLogits.apply(input, target, weight=_array(weight, input),
                                                   reduction=reduction,
                                                   pos_weight=_array(pos_weight, input))


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(x - y)^2; with weight (input's size) 'mean' divides by weight.sum()."""
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    _warn_broadcast("mse_loss", input, target)
    return loss.MSE.apply(input, target, weight=_elementwise_weight(weight, input, "mse_loss"),
                          reduction=reduction, weight_mean=True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|x - y|; with weight (input's size) 'mean' divides by weight.sum()."""
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    _warn_broadcast("l1_loss", input, target)
    return loss.L1.apply(input, target, weight=_elementwise_weight(weight, input, "l1_loss"),
                         reduction=reduction, weight_mean=True)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Quadratic for |x - y| < beta, linear beyond (Fast R-CNN); beta=0 is L1."""
    input, target = as_tensor(input), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    beta = _real(beta, "beta")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss needs beta >= 0; got {beta}")
    _warn_broadcast("smooth_l1_loss", input, target)
    return loss.SmoothL1.apply(input, target, reduction=reduction, beta=beta)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Quadratic for |x - y| < delta, delta-scaled linear beyond; = delta * smooth_l1(beta=delta).

    With weight (input's size) 'mean' still divides by the element count (PyTorch's rule).
    """
    input, target = as_tensor(input), as_tensor(target)
    reduction = one_of(reduction, "reduction", _REDUCTIONS)
    delta = _real(delta, "delta")
    if delta <= 0:
        raise ValueError(f"huber_loss needs delta > 0; got {delta}")
    _warn_broadcast("huber_loss", input, target)
    return loss.Huber.apply(input, target, weight=_elementwise_weight(weight, input, "huber_loss"),
                            reduction=reduction, delta=delta)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                        reduction="mean"):
    """max(0, -y (x1 - x2) + margin): y = 1 wants x1 ranked above x2, y = -1 the reverse."""
    input1, input2, target = as_tensor(input1), as_tensor(input2), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    if not input1.ndim == input2.ndim == target.ndim:
        raise ValueError(f"margin_ranking_loss expects input1, input2 and target of the same "
                         f"rank; got shapes {tuple(input1.shape)}, {tuple(input2.shape)}, "
                         f"{tuple(target.shape)}")
    return loss.MarginRanking.apply(input1, input2, _array(target, input1),
                                    margin=_real(margin, "margin"), reduction=reduction)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim: (N, D), (N, D) -> (N,) (or (N, 1) with keepdim)."""
    p, eps = _real(p, "p"), _real(eps, "eps")
    if not 0 < p < float("inf"):
        raise ValueError(f"pairwise_distance needs a finite norm degree p > 0; got {p}")
    return loss.PairwiseDistance.apply(x1, x2, p=p, eps=eps, keepdim=keepdim)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction="mean"):
    """max(0, margin + d(a, p) - d(a, n)), d = pairwise_distance (Schroff et al., FaceNet).

    anchor, positive, negative: (N, D) or (D,). swap=True uses min(d(a, n), d(p, n)) as the
    negative distance (Balntas et al., 2016). margin must be > 0.
    """
    anchor, positive, negative = as_tensor(anchor), as_tensor(positive), as_tensor(negative)
    reduction = _reduction(reduction, size_average, reduce)
    margin = _real(margin, "margin")
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss needs margin > 0; got {margin}")
    shapes = [tuple(t.shape) for t in (anchor, positive, negative)]
    if not anchor.ndim == positive.ndim == negative.ndim or anchor.ndim not in (1, 2):
        raise ValueError(f"triplet_margin_loss expects anchor, positive and negative all (N, D) "
                         f"or all (D,); got shapes {shapes}")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:  # elementwise min; ties split the gradient, as torch.min does
        d_neg = -((-d_neg).maximum(-pairwise_distance(positive, negative, p, eps)))
    hinge = (d_pos - d_neg + margin).clamp(min=0.0)
    if reduction == "none":
        return hinge
    return hinge.sum() if reduction == "sum" else hinge.mean()


def _pair_inputs(name, input1, input2, target):
    if input1.shape != input2.shape or input1.ndim not in (1, 2):
        raise ValueError(f"{name} expects input1 and input2 both (N, D) or both (D,); got "
                         f"{tuple(input1.shape)} and {tuple(input2.shape)}")
    if target.shape != input1.shape[:-1]:
        raise ValueError(f"{name} expects target of shape {input1.shape[:-1]}; got "
                         f"{tuple(target.shape)}")


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                          reduction="mean"):
    """1 - cos(x1, x2) for y = 1, max(0, cos(x1, x2) - margin) for y = -1.

    input1, input2: (N, D) or (D,); target: (N,) or () with values 1 or -1 (anything else is a
    ValueError here; PyTorch silently gives 0). margin in [-1, 1].
    """
    input1, input2, target = as_tensor(input1), as_tensor(input2), as_tensor(target)
    reduction = _reduction(reduction, size_average, reduce)
    margin = _real(margin, "margin")
    if not -1 <= margin <= 1:
        raise ValueError(f"cosine_embedding_loss needs margin in [-1, 1]; got {margin}")
    _pair_inputs("cosine_embedding_loss", input1, input2, target)
    y = target.data
    bad = (y != 1) & (y != -1)
    if bad.any():
        raise ValueError(f"cosine_embedding_loss expects target values 1 or -1; got "
                         f"{y[bad].reshape(-1)[0]}")
    return loss.CosineEmbedding.apply(input1, input2, y, margin=margin, reduction=reduction)


def contrastive_loss(input1, input2, target, margin=1.0, reduction="mean"):
    """0.5 * (y d^2 + (1 - y) max(0, margin - d)^2), d = ||x1 - x2||_2 (Hadsell et al., 2006).

    input1, input2: (N, D) or (D,) embeddings from the two arms of a Siamese network; target
    (N,) or () with 1 = similar pair, 0 = dissimilar pair (the paper's labels are the other way
    round). margin > 0. No PyTorch equivalent.
    """
    input1, input2, target = as_tensor(input1), as_tensor(input2), as_tensor(target)
    reduction = one_of(reduction, "reduction", _REDUCTIONS)
    margin = _real(margin, "margin")
    if margin <= 0:
        raise ValueError(f"contrastive_loss needs margin > 0; got {margin}")
    _pair_inputs("contrastive_loss", input1, input2, target)
    y = target.data
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(f"contrastive_loss expects target values 1 (similar) or 0 "
                         f"(dissimilar); got {y[bad].reshape(-1)[0]}")
    return loss.Contrastive.apply(input1, input2, y, margin=margin, reduction=reduction)
