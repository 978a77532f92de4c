"""LARS (You et al. 2017) as optax computes it: two passes over one parameter array.

Pass 1, ``lars_norms`` (reads g, p): one reduction over both::

    g = clamp(grad * grad_scale, -clip, clip)        (plus the accumulated sum, as _template)
    d = g + wd * p                                   (when wd != 0)
    sum(p * p), sum(d * d)                           (float64, squares of float64 values)

Pass 2, ``lars_update`` (reads g, p, buf; writes buf, p), with ratio = tc * ||p|| / (||d|| + eps)
computed in double in between::

    d   = lr * (d * ratio)
    buf = d + momentum * buf                         (use_buf: momentum != 0)
    p   = p - (d + momentum * buf if nesterov else buf)      (p - d without a buffer)

Gradient accumulation: pass 1 leaves the window's sum in ``acc`` (instead of zeroing it) and pass
2 reads the gradient from there (``from_acc``) and zeroes it, so both passes see the same sum.
The sums are deterministic whatever the threads (fixed chunks, float64 lanes: see ``lamb``);
``work`` holds the lanes (2 * width per chunk: p's, then d's), the chunk partials (2 per chunk)
and, last, the two totals (||p||^2, ||d||^2): ``_per_array_template``'s vector layout.
"""
from __future__ import annotations

import cython

from fastopt._kernels._per_array_template import reduction, update


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _direction(gi: cython.floating, pi: cython.floating, wd: cython.floating) -> cython.floating:
    """d = g + wd * p, as optax adds it only when wd != 0 (a select, not a branch)."""
    k: cython.floating = gi + wd * pi
    return k if wd != 0 else gi


@reduction(sums=("p_sq", "d_sq"), grad="keep")
def lars_norms(wd: cython.floating):
    p_sq += sq(pi)
    d_sq += sq(_direction(gi, pi, wd))


@update(states=("buf",))
def lars_update(wd: cython.floating, ratio: cython.floating, lr: cython.floating, momentum: cython.floating,
                use_buf: cython.bint, nesterov: cython.bint):
    bi: cython.floating
    gi = lr * (_direction(gi, pi, wd) * ratio)
    bi = gi
    if use_buf:
        bi = gi + momentum * buf[i]
        buf[i] = bi
        if nesterov:
            bi = gi + momentum * bi
    p[i] = pi - bi
