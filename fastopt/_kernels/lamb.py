"""LAMB (You et al. 2019) as Keras 3 computes it: two passes over one parameter array.

Pass 1, ``lamb_norms`` (reads g, p, m, v; writes m, v)::

    g  = clamp(grad * grad_scale, -clip, clip)       (plus the accumulated sum, as _template)
    pd = p - p * wd * lr                             (Keras's decoupled decay; ``decay`` flag)
    m  = m + (g - m) * c1;  v = v + (g * g - v) * c2          (c1 = 1 - b1, c2 = 1 - b2)
    r  = (m / bc1) / (sqrt(v / bc2) + eps)                    (bc1 = 1 - b1^t, bc2 = 1 - b2^t)
    sum(r * r), sum(pd * pd)                                  (float64, squares of float64 values)

Pass 2, ``lamb_update`` (reads p, m, v; writes p; r recomputed from m and v, no temporaries)::

    p  = pd - step * r                               (step = ratio * lr, ratio = ||pd|| / ||r||)

The sums are deterministic whatever the threads: chunks of a fixed ``chunk`` elements, each
summed in ``width`` interleaved float64 lanes (element i of a chunk adds to lane i % width, so the
loop vectorizes without reassociating), lanes and chunks added in a fixed order. ``work`` holds
the lanes (2 * width per chunk: r's, then pd's), the chunk partials (2 per chunk) and, last, the two
totals (``_per_array_template``'s vector layout, which writes the loops).
"""
from __future__ import annotations

import cython

from fastopt._kernels._per_array_template import reduction, update


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _direction(mi: cython.floating, vi: cython.floating, bc1: cython.floating, bc2: cython.floating,
               eps: cython.floating) -> cython.floating:
    """The unscaled update r of one element (Keras: m_hat / (sqrt(v_hat) + eps))."""
    r: cython.floating = sqrt(vi / bc2)  # a local first: under Cython libc's sqrt returns a double
    return (mi / bc1) / (r + eps)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _decayed(pi: cython.floating, wd: cython.floating, lr: cython.floating, decay: cython.bint) -> cython.floating:
    """The parameter after Keras's decay (``decay``): p - p * wd * lr (a select, not a branch)."""
    k: cython.floating = pi - pi * wd * lr
    return k if decay else pi


@reduction(states=("m", "v"), sums=("r_sq", "pd_sq"), grad="consume")
def lamb_norms(c1: cython.floating, c2: cython.floating, bc1: cython.floating, bc2: cython.floating,
               eps: cython.floating, wd: cython.floating, lr: cython.floating, decay: cython.bint):
    mi: cython.floating
    vi: cython.floating
    mi = m[i] + (gi - m[i]) * c1
    vi = v[i] + (gi * gi - v[i]) * c2
    m[i] = mi
    v[i] = vi
    r_sq += sq(_direction(mi, vi, bc1, bc2, eps))
    pd_sq += sq(_decayed(p[i], wd, lr, decay))


@update(reads=("m", "v"), grad=False)
def lamb_update(bc1: cython.floating, bc2: cython.floating, eps: cython.floating, wd: cython.floating,
                lr: cython.floating, decay: cython.bint, step: cython.floating):
    p[i] = _decayed(pi, wd, lr, decay) - step * _direction(m[i], v[i], bc1, bc2, eps)
