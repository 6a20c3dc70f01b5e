"""Helpers that act on a model's parameters: gradient clipping, batch-norm folding, fused
activations."""

from juanji.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from juanji.nn.utils.fusion import (
    fold_batch_norms,
    fuse_activations,
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
)

__all__ = ["clip_grad_norm_", "clip_grad_value_", "fold_batch_norms", "fuse_conv_bn_eval",
           "fuse_conv_bn_weights", "fuse_activations"]
