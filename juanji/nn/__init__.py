"""Neural-network layers, containers and functions (PyTorch's `torch.nn`).

Each layer family lives in its own module under `juanji.nn.layers` and lists its public names
in `__all__`; this package re-exports them all.
"""

from juanji.nn import functional, init
from juanji.nn.layers.activation import *  # noqa: F401,F403
from juanji.nn.layers.conv import *  # noqa: F401,F403
from juanji.nn.layers.dropout import *  # noqa: F401,F403
from juanji.nn.layers.linear import *  # noqa: F401,F403
from juanji.nn.layers.loss import *  # noqa: F401,F403
from juanji.nn.layers.norm import *  # noqa: F401,F403
from juanji.nn.layers.padding import *  # noqa: F401,F403
from juanji.nn.layers.pooling import *  # noqa: F401,F403
from juanji.nn.layers.structure import *  # noqa: F401,F403
from juanji.nn.layers.upsample import *  # noqa: F401,F403
from juanji.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential", "functional", "init"]
