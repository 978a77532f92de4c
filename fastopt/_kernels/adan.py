"""Adan (Xie et al. 2022), optax's formulation (scale_by_adan + adan).

    d  = g - g_prev  (0 on the first step)
    m  = c1 * g + b1 * m                                     (c1 = 1 - b1)
    v  = c2 * d + b2 * v                                     (c2 = 1 - b2)
    nu = c3 * (s * s) + b3 * nu,  s = g + c2 * d            (c3 = 1 - b3)
    u  = (m / bc1 + c2 * (v / bc2)) / (sqrt(nu / bc3 + eps_root) + eps)
    p  = p - lr * (u + wd * p);  g_prev = g                  (the decay term only when wd != 0)

with bck = 1 - bk^t computed in double per step. On the first step d is 0 (optax does not take
g - 0), so v = b2 * v and s = g.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "v", "nu", "gp"))
def adan(bc1: cython.floating, bc2: cython.floating, bc3: cython.floating, first: cython.bint,
         lr: cython.floating, eps: cython.floating, eps_root: cython.floating, b1: cython.floating,
         c1: cython.floating, b2: cython.floating, c2: cython.floating, b3: cython.floating,
         c3: cython.floating, wd: cython.floating):
    d: cython.floating
    mi: cython.floating
    vi: cython.floating
    si: cython.floating
    ni: cython.floating
    u: cython.floating
    r: cython.floating
    d = gi - gp[i]
    mi = c1 * gi + b1 * m[i]
    vi = b2 * v[i] if first else c2 * d + b2 * v[i]
    si = gi if first else gi + c2 * d
    ni = c3 * (si * si) + b3 * nu[i]
    r = sqrt(ni / bc3 + eps_root)  # a local first: under Cython libc's sqrt returns a double
    u = (mi / bc1 + c2 * (vi / bc2)) / (r + eps)
    if wd != 0:
        u = u + wd * pi
    m[i] = mi
    v[i] = vi
    nu[i] = ni
    gp[i] = gi
    p[i] = pi - lr * u
