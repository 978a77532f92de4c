"""Naive NumPy references of gradient clipping: torch.nn.utils' ``clip_grad_norm_`` and ``clip_grad_value_``
(in place), and Keras 3's optimizer keywords ``clipnorm``, ``global_clipnorm``, ``clipvalue`` (``keras_clip``)."""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.ops import _vector_norm

__all__ = ["clip_grad_norm_", "clip_grad_value_", "keras_clip"]


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale ``grads`` in place so that their total norm is at most ``max_norm`` (torch.nn.utils.clip_grad_norm_).

    total = || (||g_1||_q, ..., ||g_n||_q) ||_q       (q = norm_type; inf: max |g|)
    g = g * min(max_norm / (total + 1e-6), 1)         (always applied, as torch does)

    Norms accumulate in float64 (torch accumulates in the gradients' dtype). Returns the total norm as a float;
    an empty list gives 0.0. With ``error_if_nonfinite`` a NaN or infinite total raises RuntimeError before any
    gradient changes.
    """
    grads = list(grads)
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    total = _vector_norm([_vector_norm(g, norm_type) for g in grads], norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`")
    clip_coef = float(max_norm) / (total + 1e-6)
    if clip_coef > 1.0:  # a NaN coefficient stays NaN, as torch.clamp
        clip_coef = 1.0
    with np.errstate(invalid="ignore"):  # inf * 0 -> NaN is the intended result for a non-finite total
        for g in grads:
            g *= clip_coef
    return total


def clip_grad_value_(grads, clip_value):
    """Clip every gradient in place to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_)."""
    clip_value = float(clip_value)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)


def keras_clip(grads, *, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """Keras 3 gradient clipping (``BaseOptimizer._clip_gradients``), returning new arrays.

    clipnorm:         g = g * clipnorm / max(||g||_2, clipnorm)               (each array on its own)
    global_clipnorm:  s = global_clipnorm * min(1 / N, 1 / global_clipnorm) + (N - N),  g = g * s
                      (N = sqrt(sum ||g_i||^2); the N - N term turns a non-finite N into a NaN scale)
    clipvalue:        g = clip(g, -clipvalue, clipvalue)

    At most one keyword may be set (Keras raises ValueError otherwise); None, 0 or a negative value means off.
    Norms accumulate in float64 (Keras computes them in the gradients' dtype).
    """
    if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
            f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
    grads = list(grads)
    if clipnorm and clipnorm > 0:
        clipnorm = float(clipnorm)
        # np.maximum, not max(): a NaN norm must give NaN gradients, as ops.maximum does
        return [g * clipnorm / float(np.maximum(_vector_norm(g, 2.0), clipnorm)) for g in grads]
    if global_clipnorm and global_clipnorm > 0:
        c = float(global_clipnorm)
        norm = np.sqrt(np.float64(sum(float(np.sum(np.square(np.asarray(g, np.float64)))) for g in grads)))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = float(c * np.minimum(1.0 / norm, 1.0 / c) + (norm - norm))
        return [g * scale for g in grads]
    if clipvalue and clipvalue > 0:
        v = float(clipvalue)
        return [np.clip(g, -v, v) for g in grads]
    return [g.copy() for g in grads]
