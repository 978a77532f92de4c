"""NAdam (Dozat 2016): torch.optim.NAdam's formulation, and Keras 3's Nadam (``keras``).

torch (``keras`` False):

    g   = clamp(grad * grad_scale, -clip, clip) + l2 * p     (l2: coupled weight_decay)
    p   = p * decay                                          (decay: NAdamW's 1 - lr * wd)
    m   = lerp(m, g, c1);  v = b2 * v + c2 * g * g           (c1 = 1 - b1, c2 = 1 - b2)
    den = sqrt(v / bc2) + eps
    p   = p + (cg * g) / den;  p = p + (cm * m) / den        (two additions, in this order)

with cg = -lr (1 - mu_t) / (1 - P_t), cm = -lr mu_{t+1} / (1 - P_t mu_{t+1}), P_t the product
mu_1 ... mu_t.

Keras (``keras`` True):

    p   = p - p * kwd * lr                                   (Keras's decoupled decay, first)
    m   = m + (g - m) * c1;  v = v + (g * g - v) * c2
    den = sqrt(v / bc2) + eps
    p   = p - (((am * m) / dm + (ag * g) / dg) * lr) / den

with am = u_{t+1}, dm = 1 - P_{t+1}, ag = 1 - u_t, dg = 1 - P_t. Every coefficient, bc2 =
1 - b2^t included, is computed in double per step; one kernel serves both, the flag choosing
the moving averages' and the update's form.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "v"))
def nadam(bc2: cython.floating, cg: cython.floating, cm: cython.floating, am: cython.floating,
          dm: cython.floating, ag: cython.floating, dg: cython.floating, lr: cython.floating,
          eps: cython.floating, c1: cython.floating, b2: cython.floating, c2: cython.floating,
          l2: cython.floating, decay: cython.floating, kwd: cython.floating, keras: cython.bint):
    mi: cython.floating
    vi: cython.floating
    den: cython.floating
    if l2 != 0:
        gi = gi + l2 * pi
    pi = pi * decay
    if kwd != 0:
        pi = pi - pi * kwd * lr
    if keras:
        mi = m[i] + (gi - m[i]) * c1
        vi = v[i] + (gi * gi - v[i]) * c2
    else:
        mi = lerp(m[i], gi, c1)
        vi = b2 * v[i] + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    den = sqrt(vi / bc2)  # a local first: under Cython libc's sqrt returns a double
    den = den + eps
    if keras:
        p[i] = pi - (((am * mi) / dm + (ag * gi) / dg) * lr) / den
    else:
        p[i] = (pi + (cg * gi) / den) + (cm * mi) / den
