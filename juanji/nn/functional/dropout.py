"""Dropout functions."""

from juanji.nn.args import one_of, probability
from juanji.ops import dropout as dropout_ops
from juanji.random import default_generator
from juanji.tensor import as_tensor

__all__ = ["dropout"]

def dropout(input, p=0.5, training=True, inplace=False, mode="upscale_in_train", generator=None):
    """Zero elements with probability p. mode 'upscale_in_train' (PyTorch) scales kept values
    by 1/(1-p) in training; 'downscale_in_infer' (Paddle) scales by (1-p) at inference."""
    p = probability(p)
    one_of(mode, "mode", ("upscale_in_train", "downscale_in_infer"))
    input = as_tensor(input)
    if not training:
        return input if mode == "upscale_in_train" else input * (1.0 - p)
    if p == 0:
        return input
    rng = generator or default_generator()
    return dropout_ops.Dropout.apply(input, p=p, rng=rng, scale_kept=mode == "upscale_in_train")
