"""Gradient clipping, in place on `p.grad`, as `torch.nn.utils.clip_grad_norm_` / `_value_`."""

import math
import numbers

import numpy as np


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most max_norm.

    The total norm is the `norm_type` norm of the per-gradient norms (equal to the norm of all
    gradients concatenated; for inf, the largest absolute entry). Every gradient is multiplied
    by min(1, max_norm / (total_norm + 1e-6)), so directions are kept and small gradients pass
    unchanged. Parameters whose grad is None are ignored.

    Args:
        parameters: a Parameter or an iterable of Parameters.
        max_norm: largest allowed total norm, >= 0.
        norm_type: p of the p-norm (> 0), or math.inf.
        error_if_nonfinite: raise instead of scaling when the total norm is NaN or Inf
            (otherwise, as PyTorch, the gradients become NaN).

    Returns:
        The total norm before clipping, as a float (0.0 when no parameter has a gradient).

    Raises:
        RuntimeError: error_if_nonfinite and the total norm is NaN or Inf (PyTorch's type).
    """
    _check_number("max_norm", max_norm, 0.0, allow_zero=True)
    _check_number("norm_type", norm_type, 0.0, allow_zero=False)
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return 0.0
    norms = np.stack([_norm(g, norm_type) for g in grads])  # (number of grads,)
    total = _norm(norms, norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"the total gradient norm (norm_type={norm_type}) is {float(total)}, so it cannot be "
            "clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    coefficient = min(max_norm / (total + total.dtype.type(1e-6)), 1.0)
    with np.errstate(invalid="ignore"):  # a non-finite total makes NaN gradients, as PyTorch
        for g in grads:
            g *= g.dtype.type(coefficient)
    return float(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry to [-clip_value, clip_value], in place; grad None is skipped.

    Args:
        parameters: a Parameter or an iterable of Parameters.
        clip_value: bound on each entry's magnitude, >= 0.
    """
    _check_number("clip_value", clip_value, 0.0, allow_zero=True)
    for p in _as_list(parameters):
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)


def _as_list(parameters):
    if hasattr(parameters, "grad") and hasattr(parameters, "data"):
        return [parameters]
    return list(parameters)


def _norm(array, norm_type):
    """The norm_type vector norm of all entries, in the array's dtype (a 0-d array)."""
    flat = array.reshape(-1)
    if math.isinf(norm_type):
        return np.abs(flat).max() if flat.size else flat.dtype.type(0)
    if norm_type == 2.0:
        return np.sqrt(np.dot(flat, flat))
    return (np.abs(flat) ** norm_type).sum() ** (1.0 / norm_type)


def _check_number(name, value, low, allow_zero):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value >= low if allow_zero else value > low)
    if not ok:
        relation = ">=" if allow_zero else ">"
        raise ValueError(f"{name} must be a number {relation} {low}; got {name}={value!r}")
