"""RAdam (Liu et al. 2020), torch.optim's formulation.

    g = clamp(grad * grad_scale, -clip, clip) + l2 * p       (l2: coupled weight_decay)
    p = p * decay                                            (decay: RAdamW's 1 - lr * wd)
    m = lerp(m, g, c1);  v = b2 * v + c2 * g * g             (c1 = 1 - b1, c2 = 1 - b2)
    d = (m / bc1) * lr
    d = (d * ((one / (sqrt(v) + eps)) * sbc2)) * rect        (rectify only)
    p = p - d

with bc1 = 1 - b1^t, sbc2 = sqrt(1 - b2^t) and the rectification term ``rect`` computed in
double per step; ``rectify`` (rho_t > 5) is decided per step in Python, for the whole array.
``one`` is 1 in the arrays' dtype (a literal would make Numba compute the reciprocal in double).
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "v"), unswitch=("rectify",))
def radam(bc1: cython.floating, sbc2: cython.floating, rect: cython.floating, rectify: cython.bint,
          lr: cython.floating, one: cython.floating, eps: cython.floating, c1: cython.floating,
          b2: cython.floating, c2: cython.floating, l2: cython.floating, decay: cython.floating):
    mi: cython.floating
    vi: cython.floating
    di: cython.floating
    ai: cython.floating
    if l2 != 0:
        gi = gi + l2 * pi
    pi = pi * decay
    mi = lerp(m[i], gi, c1)
    vi = b2 * v[i] + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    di = (mi / bc1) * lr
    # the adaptive term on both paths (locals assigned on every path keep the loop vectorizable;
    # only the first few steps are not rectified)
    ai = sqrt(vi)  # a local first: under Cython libc's sqrt returns a double
    ai = ai + eps
    ai = (one / ai) * sbc2
    if rectify:
        di = (di * ai) * rect
    p[i] = pi - di
