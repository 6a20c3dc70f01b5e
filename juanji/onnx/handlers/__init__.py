"""One handler per ONNX op type, grouped by family; HANDLERS is the explicit registry."""

from juanji.onnx.handlers import (
    activation,
    arithmetic,
    conv,
    linear,
    movement,
    norm,
    reduce,
    resize,
    shape,
)

HANDLERS = {
    **conv.HANDLERS,
    **norm.HANDLERS,
    **linear.HANDLERS,
    **activation.HANDLERS,
    **arithmetic.HANDLERS,
    **reduce.HANDLERS,
    **movement.HANDLERS,
    **shape.HANDLERS,
    **resize.HANDLERS,
}

SUPPORTED_OPS = sorted(HANDLERS) + ["Constant"]
