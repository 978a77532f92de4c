"""Schedule-free AdamW and SGD (Defazio et al. 2024), optax.contrib's formulation, in one pass.

The parameters hold y (where gradients are taken); x is the evaluation sequence, z the base
optimizer's:

    z, x = p, p                                              (``first``: the first update)
    v  = c2 * (g * g) + b2 * v                               (``adaptive`` only; c2 = 1 - b2)
    d  = g * (one / (sqrt(v / bc2) + eps)) if adaptive else g
    d  = d + wd * p                                          (wd != 0; p is y)
    z  = z - lr_z * d
    x  = ck1 * x + ck * z                                    (ck1 = 1 - ck)
    p  = b1 * x + cb1 * z                                    (cb1 = 1 - b1)

lr_z (the warmed-up learning rate), ck (the averaging weight) and bc2 = 1 - b2^t are computed in
double per step from the optimizer's scalar state; ``one`` is 1 in the arrays' dtype (a literal 1
would make Numba divide in float64).
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("z", "x", "v"))
def schedule_free(lr_z: cython.floating, ck: cython.floating, ck1: cython.floating, bc2: cython.floating,
                  first: cython.bint, b1: cython.floating, cb1: cython.floating, b2: cython.floating,
                  c2: cython.floating, eps: cython.floating, wd: cython.floating, one: cython.floating,
                  adaptive: cython.bint):
    zi: cython.floating
    xi: cython.floating
    vi: cython.floating
    d: cython.floating
    r: cython.floating
    zi = pi if first else z[i]
    xi = pi if first else x[i]
    # every local assigned on both paths (a live-out value from one path keeps gcc from vectorizing);
    # v is an empty array for SGD, never indexed there
    vi = c2 * (gi * gi) + b2 * v[i] if adaptive else gi
    r = sqrt(vi / bc2)  # a local first: under Cython libc's sqrt returns a double
    d = gi * (one / (r + eps)) if adaptive else gi
    if adaptive:
        v[i] = vi
    if wd != 0:
        d = d + wd * pi
    zi = zi - lr_z * d
    xi = ck1 * xi + ck * zi
    z[i] = zi
    x[i] = xi
    p[i] = b1 * xi + cb1 * zi
