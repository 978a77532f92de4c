"""RMSprop (Hinton 2012; centered: Graves 2013), torch.optim's formulation.

    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    sq  = alpha * sq + c_alpha * g * g                       (c_alpha = 1 - alpha)
    ga  = lerp(ga, g, c_alpha) = ga + c_alpha * (g - ga)     (centered only; torch's lerp)
    den = sqrt(sq - ga * ga) + eps if centered else sqrt(sq) + eps
    buf = momentum * buf + g / den;  p = p - lr * buf          (momentum > 0)
    p   = p + (-lr * g) / den                                  (otherwise)

``num`` is 1 with momentum and -lr without, so either path divides once: (num * g) / den.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("sq", "ga", "buf"))
def rmsprop(lr: cython.floating, alpha: cython.floating, c_alpha: cython.floating, eps: cython.floating,
            weight_decay: cython.floating, momentum: cython.floating, num: cython.floating,
            centered: cython.bint, use_buf: cython.bint):
    si: cython.floating
    ai: cython.floating
    bi: cython.floating
    den: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    si = alpha * sq[i] + c_alpha * gi * gi
    sq[i] = si
    # every local is assigned once per iteration (Cython makes them lastprivate, and gcc
    # will not vectorize a loop whose live-out value comes from a conditional path)
    ai = gi
    if centered:
        ai = lerp(ga[i], gi, c_alpha)
        ga[i] = ai
    if centered:
        si = si - ai * ai
    den = sqrt(si)  # one sqrt per element on either path
    den = den + eps
    bi = (num * gi) / den  # the step's one division: g / den (momentum) or (-lr * g) / den
    if use_buf:
        bi = momentum * buf[i] + bi
        buf[i] = bi
        p[i] = pi - lr * bi
    else:
        p[i] = pi + bi
