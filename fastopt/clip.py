"""Gradient norms and clipping, torch-style functional helpers.

Norms accumulate in float64 over fixed chunks (torch's float32 norm is off by ~7e-4 at
16M elements), so the result does not depend on the thread count or the backend.
The optimizers' Keras keywords (``clipnorm``, ``clipvalue``, ``global_clipnorm``) fuse the
same reduction into their step instead of writing the gradients.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt import _backends
from fastopt._validate import FLOAT_DTYPES, check_array_type, overlapping, real, span

_KIND = {2.0: 0, math.inf: 1}


def _arrays(grads, writeable, distinct=False):
    """``grads`` as a list of checked arrays; ``distinct``: no two may share memory."""
    if isinstance(grads, np.ndarray):
        arrays = [grads]
    elif isinstance(grads, (list, tuple)) or (hasattr(grads, "__iter__") and not isinstance(grads, (str, bytes, dict))):
        arrays = list(grads)
    else:
        raise TypeError(f"grads must be an array or a list of arrays, got {type(grads).__name__}")
    for i, g in enumerate(arrays):
        where = f"grads[{i}]"
        check_array_type(g, where)
        if g.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{where} has dtype {g.dtype}; fastopt supports float32 and float64")
        if not g.flags.c_contiguous:
            raise ValueError(f"{where} is not C-contiguous")
        if writeable and not g.flags.writeable:
            raise ValueError(f"{where} is read-only; clipping writes it in place")
    if distinct:
        clash = overlapping([span(g) + (f"grads[{i}]",) for i, g in enumerate(arrays)])
        if clash:
            raise ValueError(f"{clash[1]} shares memory with {clash[0]}: its elements would count twice in "
                             "the norm and be scaled twice; pass each gradient once")
    return arrays


def _norm_type(norm_type):
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        return math.inf
    p = real("norm_type", norm_type)
    if not (p > 0):
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type!r}")
    return p


def _norm(arrays, p, backend):
    """The p-norm of all elements of ``arrays`` together, in float64."""
    kind = _KIND.get(p, 2)
    chunk = _backends.NORM_CHUNK
    total = []
    for g in arrays:
        x = g.reshape(-1)
        out = np.empty(max(1, -(-x.size // chunk)))
        lanes = np.empty(out.size * _backends.NORM_LANES)
        backend.kernel("norm_partials", x.dtype, _backends.chunks_for(x.size) > 1)(
            x, out, lanes, chunk, _backends.NORM_LANES, kind, p)
        total.append(out.max() if kind == 1 else math.fsum(out))  # ndarray.max propagates NaN
    if not total:
        return 0.0
    if kind == 1:
        return float(np.max(total))  # NaN-propagating, unlike the builtin max
    s = math.fsum(total)
    return math.sqrt(s) if kind == 0 else s ** (1.0 / p)


def global_norm(grads, norm_type=2.0, *, backend=None):
    """The norm of all gradient arrays taken together (float64), without changing them."""
    return np.float64(_norm(_arrays(grads, False), _norm_type(norm_type), _backends.backend(backend)))


def _scale_clamp(arrays, scale, clip, backend):
    for g in arrays:
        x = g.reshape(-1)
        nchunks = _backends.chunks_for(x.size)
        backend.kernel("scale_clamp_", x.dtype, nchunks > 1)(x, scale, clip, nchunks)


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, *, backend=None):
    r"""Scale ``grads`` in place so their total norm is at most ``max_norm``; return the norm.

    .. math::
        n = \big(\textstyle\sum_i \|g_i\|_p^p\big)^{1/p},\quad
        g_i \leftarrow g_i \cdot \min\!\big(1, \tfrac{\text{max\_norm}}{n + 10^{-6}}\big)

    As ``torch.nn.utils.clip_grad_norm_``: ``norm_type`` 2 (default), ``inf`` (max |g|) or
    any p > 0; a non-finite norm makes every gradient non-finite, or raises ``RuntimeError``
    (before anything changes) with ``error_if_nonfinite=True``.

    Args:
        grads: an array or a list of arrays (float32/float64, C-contiguous, writeable, no two
            sharing memory).
        max_norm: the largest norm allowed. norm_type: p of the p-norm.
        error_if_nonfinite: raise instead of clipping by a NaN/inf norm.

    Returns:
        The total norm before clipping (``numpy.float64``).

    Example:
        >>> total = fastopt.clip_grad_norm_([dw, db], max_norm=1.0)
    """
    arrays = _arrays(grads, True, distinct=True)
    max_norm = real("max_norm", max_norm, low=0.0)
    p = _norm_type(norm_type)
    be = _backends.backend(backend)
    total = _norm(arrays, p, be)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {float(norm_type)} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = max_norm / (total + 1e-6)
    coef = coef if coef != coef else min(coef, 1.0)
    if coef != 1.0:  # multiplying by exactly 1 changes nothing; skip the pass
        _scale_clamp(arrays, coef, math.inf, be)
    return np.float64(total)


def clip_grad_value_(grads, clip_value, *, backend=None):
    """Clamp every element of ``grads`` to ``[-clip_value, clip_value]`` in place (NaN stays NaN).

    As ``torch.nn.utils.clip_grad_value_``.

    Example:
        >>> fastopt.clip_grad_value_([dw, db], 0.5)
    """
    arrays = _arrays(grads, True)
    clip_value = real("clip_value", clip_value, low=0.0)
    _scale_clamp(arrays, 1.0, clip_value, _backends.backend(backend))
