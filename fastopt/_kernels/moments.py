"""optax's Adam-like rules with another second moment: Yogi (Zaheer et al. 2018) and AdaBelief
(Zhuang et al. 2020), optax's formulations (scale_by_yogi, scale_by_belief).

    m  = c1 * g + b1 * m                                          (c1 = 1 - b1)
    v  = v - (c2 * sign(v - g * g)) * (g * g)                     (Yogi; c2 = 1 - b2)
    v  = (c2 * ((g - m)^2) + b2 * v) + eps_acc                    (``belief``: the new m; eps_acc = eps_root)
    mh = b1 * (m / bc1n) + c1 * (g / bc1) if nesterov else m / bc1
    p  = p - lr * (mh / (sqrt(v / bc2 + eps_sqrt) + eps))         (eps_sqrt: Yogi's eps_root, 0 for AdaBelief)

with bc1 = 1 - b1^t, bc1n = 1 - b1^(t+1), bc2 = 1 - b2^t computed in double per step. AdaBelief's
``v / bc2 + 0`` is ``v / bc2`` exactly (v >= +0).
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "v"), unswitch=("belief",))
def moments(bc1: cython.floating, bc1n: cython.floating, bc2: cython.floating, lr: cython.floating,
            eps: cython.floating, eps_sqrt: cython.floating, b1: cython.floating, c1: cython.floating,
            b2: cython.floating, c2: cython.floating, eps_acc: cython.floating, belief: cython.bint,
            nesterov: cython.bint):
    mi: cython.floating
    vi: cython.floating
    e: cython.floating
    g2: cython.floating
    mh: cython.floating
    r: cython.floating
    mi = c1 * gi + b1 * m[i]
    g2 = gi * gi
    e = gi - mi if belief else v[i] - g2
    if belief:
        vi = c2 * (e * e) + b2 * v[i]
        vi = vi + eps_acc
    else:
        # c2 * sign(e) as a select: e is 0 or NaN where it is neither > 0 nor < 0
        vi = v[i] - (c2 if e > 0 else (-c2 if e < 0 else c2 * e)) * g2
    m[i] = mi
    v[i] = vi
    mh = b1 * (mi / bc1n) + c1 * (gi / bc1) if nesterov else mi / bc1
    r = sqrt(vi / bc2 + eps_sqrt)  # a local first: under Cython libc's sqrt returns a double
    p[i] = pi - lr * (mh / (r + eps))
