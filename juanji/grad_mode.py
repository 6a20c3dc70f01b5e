"""The one global autograd switch: `no_grad()`, `enable_grad()`, `set_grad_enabled(mode)`."""

import contextlib
import functools

_enabled = True


def is_enabled():
    """True when ops record the graph for backward."""
    return _enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager (or decorator) that turns graph recording on or off inside its block."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        global _enabled
        self.prev = _enabled
        _enabled = self.mode

    def __exit__(self, *exc):
        global _enabled
        _enabled = self.prev
        return False


no_grad = functools.partial(set_grad_enabled, False)
no_grad.__doc__ = "Disable graph recording inside the block: `with juanji.no_grad(): ...`."
enable_grad = functools.partial(set_grad_enabled, True)
enable_grad.__doc__ = "Enable graph recording inside the block (undoes an outer no_grad)."
