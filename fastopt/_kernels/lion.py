"""Lion (Chen et al. 2023), Keras's formulation (keras.optimizers.Lion).

    p = p - p * wd * lr                              (Keras's decoupled decay, first; wd != 0)
    p = p - lr * sign(m * b1 + g * c1)               (c1 = 1 - b1; sign(0) = 0, sign(NaN) = NaN)
    m = m * b2 + g * c2                              (c2 = 1 - b2)

``lr * sign(u)`` is a select: lr, -lr, or ``lr * u`` where u is 0 or NaN (which is lr * sign(u) there).
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m",))
def lion(lr: cython.floating, wd: cython.floating, b1: cython.floating, c1: cython.floating,
         b2: cython.floating, c2: cython.floating):
    mi: cython.floating
    u: cython.floating
    if wd != 0:
        pi = pi - pi * wd * lr
    mi = m[i]
    u = mi * b1 + gi * c1
    m[i] = mi * b2 + gi * c2
    p[i] = pi - (lr if u > 0 else (-lr if u < 0 else lr * u))
