"""Dropout functions: element-wise, channel-wise (dropout2d) and alpha dropout."""

from juanji.nn.args import one_of, probability
from juanji.ops import dropout as dropout_ops
from juanji.random import default_generator
from juanji.tensor import as_tensor

__all__ = ["alpha_dropout", "dropout", "dropout2d"]

_MODES = ("upscale_in_train", "downscale_in_infer")


def dropout(input, p=0.5, training=True, inplace=False, mode="upscale_in_train", generator=None):
    """Zero elements with probability p. mode 'upscale_in_train' (PyTorch) scales kept values
    by 1/(1-p) in training; 'downscale_in_infer' (Paddle) scales by (1-p) at inference."""
    p = probability(p)
    one_of(mode, "mode", _MODES)
    input = as_tensor(input)
    if not training:
        return input if mode == "upscale_in_train" else input * (1.0 - p)
    if p == 0:
        return input
    rng = generator or default_generator()
    return dropout_ops.Dropout.apply(input, p=p, rng=rng, scale_kept=mode == "upscale_in_train")


def dropout2d(input, p=0.5, training=True, inplace=False, generator=None):
    """Zero whole channels: input (N, C, H, W) keeps or drops each (n, c) map as one.

    Kept channels are scaled by 1/(1-p) in training; eval is the identity. A 3-D input is read
    as (N, C, L), one mask entry per (n, c), which is what PyTorch 2.x does.
    """
    p = probability(p)
    input = as_tensor(input)
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d expects an (N, C, H, W) or (N, C, L) input; got shape "
                         f"{tuple(input.shape)}")
    if not training or p == 0:
        return input
    rng = generator or default_generator()
    noise_shape = input.shape[:2] + (1,) * (input.ndim - 2)  # (N, C, 1, 1)
    return dropout_ops.Dropout.apply(input, p=p, rng=rng, noise_shape=noise_shape)


def alpha_dropout(input, p=0.5, training=False, inplace=False, generator=None):
    """Dropout for SELU networks: keeps zero mean and unit variance of its input.

    Note PyTorch's default training=False for this function (the layer passes its own flag).
    """
    p = probability(p)
    input = as_tensor(input)
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    rng = generator or default_generator()
    return dropout_ops.AlphaDropout.apply(input, p=p, rng=rng)
