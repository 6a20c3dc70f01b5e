"""Argument checks shared by layers and functions; messages say expected vs received."""

import numbers


def _is_int(value):
    # type() first: the ABC check behind isinstance(..., Integral) costs a microsecond a call
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and not isinstance(value, bool))


def pair(value, name, minimum=1):
    """An int or a 2-sequence of ints, each >= minimum, as a tuple (a, b)."""
    if (type(value) is tuple and len(value) == 2 and type(value[0]) is int
            and type(value[1]) is int and value[0] >= minimum and value[1] >= minimum):
        return value  # a layer's own checked tuple, passed on every call: nothing to do
    items = (value, value) if _is_int(value) else tuple(value) if _is_seq(value) else None
    if items is None or len(items) != 2 or not all(_is_int(v) for v in items):
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return tuple(int(v) for v in items)


def single(value, name, minimum=1):
    """An int (or a 1-sequence of one int) >= minimum."""
    if _is_seq(value) and len(value) == 1:
        value = value[0]
    if not _is_int(value):
        raise ValueError(f"{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return int(value)


def probability(p, name="p"):
    """A float in [0, 1]."""
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return float(p)


def one_of(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


def check_input(x, name, ndims, what):
    """Refuse an input whose rank is not in `ndims`, saying the layout expected."""
    if x.ndim not in ndims:
        raise ValueError(f"{name} expects a {what} input; got shape {tuple(x.shape)}")


def _is_seq(value):
    return isinstance(value, (tuple, list))
