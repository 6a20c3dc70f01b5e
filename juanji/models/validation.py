"""Argument checks shared by every model factory."""

import numbers


def check_model_args(num_classes, in_channels):
    """num_classes and in_channels must be positive ints."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
