"""Affine map and reshaping functions."""

from juanji.ops import linalg
from juanji.tensor import as_tensor

__all__ = ["flatten", "linear"]

def linear(input, weight, bias=None):
    """input @ weight.T + bias.  input (*, IN), weight (OUT, IN)."""
    input = as_tensor(input)
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear expects input with {weight.shape[1]} features in its last "
                         f"dim; got shape {tuple(input.shape)}")
    return linalg.Linear.apply(input, weight, bias)


def flatten(input, start_dim=1, end_dim=-1):
    return as_tensor(input).flatten(start_dim, end_dim)
