"""Helpers that act on a model's parameters: gradient clipping."""

from juanji.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
