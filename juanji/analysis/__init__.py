"""Seeing inside a CNN by the numbers: shapes, parameters, MACs/FLOPs, receptive fields.

    from juanji.analysis import summary, explain_conv2d, receptive_fields
    print(summary(model, (1, 28, 28)).table())
"""

from juanji.analysis.counting import (
    batch_norm_params,
    conv2d_macs,
    conv2d_params,
    conv_transpose2d_macs,
    conv_transpose2d_params,
    flops_from_macs,
    linear_macs,
    linear_params,
)
from juanji.analysis.explain import explain, explain_conv2d, explain_conv_transpose2d, explain_pool
from juanji.analysis.receptive_field import (
    ReceptiveField,
    compose,
    compose_transposed,
    receptive_fields,
    walk,
)
from juanji.analysis.summary import Summary, summary
from juanji.analysis.trace import trace

__all__ = [
    "ReceptiveField", "Summary", "batch_norm_params", "compose", "compose_transposed",
    "conv2d_macs", "conv2d_params", "conv_transpose2d_macs", "conv_transpose2d_params",
    "explain", "explain_conv2d", "explain_conv_transpose2d", "explain_pool", "flops_from_macs",
    "linear_macs", "linear_params", "receptive_fields", "summary", "trace", "walk",
]
