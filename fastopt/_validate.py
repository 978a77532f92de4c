"""Checks at the boundary: every error is raised before any buffer is touched."""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _framework_hint(x):
    """What to use instead, for a framework's tensor passed to a NumPy optimizer."""
    if type(x).__module__.split(".")[0] == "torch":
        return ("; for torch tensors use fastopt.torch, e.g. fastopt.torch.Adam(model.parameters()), "
                "which steps them in place")
    return ""


#: the array types taken as they are: numpy.ndarray and memory maps, which behave as their base
#: array. Other subclasses are refused: np.matrix stays 2-D through reshape(-1) (the kernels
#: would read the wrong elements), a masked array's mask would be ignored.
ARRAY_TYPES = (np.ndarray, np.memmap)


def check_array_type(a, where):
    """``a`` is a numpy.ndarray or numpy.memmap (TypeError naming ``where`` otherwise)."""
    if type(a) in ARRAY_TYPES:
        return
    if isinstance(a, np.ndarray):
        raise TypeError(f"{where} is a {type(a).__module__}.{type(a).__name__}, an ndarray subclass fastopt does "
                        "not take; pass its plain array, np.asarray(...) (a view of the same memory)")
    raise TypeError(f"{where} must be a numpy.ndarray, got {type(a).__name__}{_framework_hint(a)}")


def check_param(a, where):
    """A parameter array: float32/float64 ndarray, C-contiguous, writeable."""
    check_array_type(a, where)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where} has dtype {a.dtype}; fastopt supports float32 and float64")
    if not a.flags.c_contiguous:
        raise ValueError(f"{where} is not C-contiguous; pass np.ascontiguousarray(...) "
                         "and keep using that array")
    if not a.flags.writeable:
        raise ValueError(f"{where} is read-only; the optimizer updates it in place")


def check_grad(g, p, where):
    """A gradient for parameter ``p``: same dtype and shape, C-contiguous."""
    check_array_type(g, where)
    if g.dtype != p.dtype:
        raise TypeError(f"{where} has dtype {g.dtype} but its parameter has dtype {p.dtype}")
    if g.shape != p.shape:
        raise ValueError(f"{where} has shape {g.shape} but its parameter has shape {p.shape}")
    if not g.flags.c_contiguous:
        raise ValueError(f"{where} is not C-contiguous")


def span(a):
    """The byte interval ``[start, stop)`` of a contiguous array."""
    start = a.__array_interface__["data"][0]
    return start, start + a.nbytes


def overlapping(spans):
    """Index pairs of the first overlapping intervals in ``spans`` (list of (start, stop, tag)), or None."""
    ordered = sorted((s for s in spans if s[1] > s[0]), key=lambda s: s[0])
    for prev, cur in zip(ordered, ordered[1:]):
        if cur[0] < prev[1]:
            return prev[2], cur[2]
    return None


def real(name, value, *, low=None, low_open=False, high=None, high_open=False):
    """A real hyperparameter in a range; NaN and non-numbers are rejected by name."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the doubles
        raise ValueError(f"{name} is too large for a double: {value!r}") from None
    if math.isnan(value):
        raise ValueError(f"{name} is NaN")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"Invalid {name} value: {value} (must be {'>' if low_open else '>='} {low})")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"Invalid {name} value: {value} (must be {'<' if high_open else '<='} {high})")
    return value


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def betas(value, name="betas"):
    try:
        b1, b2 = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (beta1, beta2), got {value!r}") from None
    return (real(f"beta parameter at index 0 ({name}[0])", b1, low=0.0, high=1.0, high_open=True),
            real(f"beta parameter at index 1 ({name}[1])", b2, low=0.0, high=1.0, high_open=True))


def positive_or_none(name, value):
    if value is None:
        return None
    return real(name, value, low=0.0, low_open=True)


def count_or_none(name, value, low):
    """None, or a whole number >= ``low``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number or None, got {value!r}")
    if value < low:
        raise ValueError(f"Invalid {name} value: {value} (must be >= {low})")
    return int(value)


def step_count(value, where):
    """A step count from a state_dict: a whole number >= 0 (int, integral float, or a one-element
    array or tensor value of one), else a ValueError/TypeError naming ``where``."""
    if not isinstance(value, (numbers.Real, np.ndarray, str)) and hasattr(value, "__array__"):
        value = np.asarray(value)  # a torch.optim state_dict's 0-dim tensor
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{where} must be one number, got an array of shape {value.shape}")
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a whole number, got {value!r}")
    if isinstance(value, numbers.Integral):
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{where} must be a whole number, got {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"{where} must be >= 0, got {value}")
    return value
