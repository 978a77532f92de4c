"""FTRL-Proximal (McMahan et al. 2013), Keras's formulation (keras.optimizers.Ftrl).

    p   = p - p * wd * lr                                   (Keras's decoupled decay, first; wd != 0)
    gs  = g + shrink2 * p                                   (shrink2 = 2 * l2_shrinkage; when != 0)
    n'  = n + g * g                                         (the plain g)
    linear = linear + (gs - (n'^e - n^e) / lr * p)          (e = power = -learning_rate_power)
    q   = n'^e / lr + l2x2                                  (l2x2 = 2 * (l2 + beta / (2 lr)))
    p   = (clip(linear, -l1, l1) - linear) / q;  n = n'

With ``root`` (e = 0.5, Keras's default) the powers are ``sqrt``, as NumPy evaluates ``x ** 0.5``;
otherwise ``x ** e`` (libm's pow in every backend: NumPy scalars' ``**``, Numba's and C's ``pow``).
The new p depends on the old one only through ``linear``: FTRL overwrites the parameter.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("accum", "linear"))
def ftrl(lr: cython.floating, power: cython.floating, l1: cython.floating, l2x2: cython.floating,
         shrink2: cython.floating, wd: cython.floating, root: cython.bint):
    ai: cython.floating
    ni: cython.floating
    pa: cython.floating
    pn: cython.floating
    gs: cython.floating
    li: cython.floating
    ci: cython.floating
    if wd != 0:
        pi = pi - pi * wd * lr
    ai = accum[i]
    ni = ai + gi * gi
    # both powers on either path: each local is assigned once per iteration
    pn = sqrt(ni) if root else ni ** power
    pa = sqrt(ai) if root else ai ** power
    gs = gi + shrink2 * pi if shrink2 != 0 else gi
    li = linear[i] + (gs - (pn - pa) / lr * pi)
    # np.clip: NaN stays NaN
    ci = l1 if li > l1 else (-l1 if li < -l1 else li)
    linear[i] = li
    accum[i] = ni
    p[i] = (ci - li) / (pn / lr + l2x2)
