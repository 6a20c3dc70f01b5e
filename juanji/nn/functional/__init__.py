"""Stateless functions (PyTorch's `torch.nn.functional`), one module per family.

`import juanji.nn.functional as F` gives them all. Each family module validates its arguments
and calls one op; layouts are NCHW and names and argument order follow PyTorch.
"""

from juanji.nn.functional.activation import *  # noqa: F401,F403
from juanji.nn.functional.conv import *  # noqa: F401,F403
from juanji.nn.functional.dropout import *  # noqa: F401,F403
from juanji.nn.functional.linear import *  # noqa: F401,F403
from juanji.nn.functional.loss import *  # noqa: F401,F403
from juanji.nn.functional.norm import *  # noqa: F401,F403
from juanji.nn.functional.pool import *  # noqa: F401,F403
from juanji.nn.functional.resize import *  # noqa: F401,F403
