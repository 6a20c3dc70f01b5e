"""juanji (卷积): a convolutional-neural-network framework from first principles on NumPy."""

from juanji.backend import get_num_threads, set_num_threads  # first: it sets up OpenBLAS
from juanji.grad_mode import enable_grad, no_grad, set_grad_enabled
from juanji.grad_mode import is_enabled as is_grad_enabled
from juanji.random import manual_seed
from juanji.tensor import Tensor, add, cat, stack, tensor

__version__ = "0.1.0"

__all__ = [
    "Tensor", "add", "cat", "enable_grad", "get_num_threads", "is_grad_enabled", "manual_seed",
    "no_grad", "set_grad_enabled", "set_num_threads", "stack", "tensor",
]
