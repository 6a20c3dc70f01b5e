"""torchvision's model definitions (`torchvision.models`) for parity tests, beside the CPU torch.

The only torchvision wheels these machines have (0.28.0, the match of torch 2.13.0) are CUDA
builds: their C++ ops library `torchvision/_C.so` links libtorch_cuda.so and libc10_cuda.so,
which the CPU build of torch does not ship, so torchvision cannot load it. torchvision then
carries on without its C++ ops, except that `torchvision/_meta_registrations.py` registers fake
kernels for `torchvision::nms` and `torchvision::qnms` unconditionally, and registering a kernel
for an operator nobody defined raises "RuntimeError: operator torchvision::nms does not exist",
which aborts `import torchvision`.

`models()` imports torchvision; when exactly that error stops the import, it defines the two
operator schemas (the signatures of torchvision's own C++ `TORCH_LIBRARY` block) and imports
again. Only the schemas exist, no implementation: torchvision.ops.nms, deform_conv2d,
roi_align... still raise torchvision's "Couldn't load custom C++ ops". The models are plain
torch.nn code and call none of these ops. Where torchvision's C++ library loads, nothing is
defined here. Tests that need torchvision skip, saying why, only when it is not installed.
"""

import importlib
import importlib.util
import sys

import pytest
import torch

# torchvision/csrc/ops/nms.cpp: the schemas _meta_registrations.py registers fake kernels for
_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_library = None  # the torch.library.Library that holds the schemas; kept alive for the process


def models():
    """Return the `torchvision.models` module, or skip the calling test if torchvision is not
    installed."""
    global _library
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (the test extras pin torchvision==0.28.0)")
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError as error:
        if _library is not None or "operator torchvision::" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # the half-imported package, so the import runs again from the top
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
    return importlib.import_module("torchvision.models")
