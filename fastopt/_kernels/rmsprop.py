"""RMSprop (Hinton 2012; centered: Graves 2013): torch.optim's formulation, and Keras 3's (``keras``).

torch (eps_in = 0, eps_out = eps):
    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    sq  = alpha * sq + c_alpha * g * g                       (c_alpha = 1 - alpha)
    ga  = lerp(ga, g, c_alpha) = ga + c_alpha * (g - ga)     (centered only; torch's lerp)
    den = sqrt(sq - ga * ga) + eps if centered else sqrt(sq) + eps
    buf = momentum * buf + g / den;  p = p - lr * buf          (momentum > 0)
    p   = p + (-lr * g) / den                                  (otherwise)

keras (eps_in = eps, eps_out = 0, weight_decay = 0; alpha is Keras's rho; lr = 1 with momentum):
    p   = p - p * kwd * klr                                  (kdecay: Keras's decoupled decay, first)
    sq  = alpha * sq + c_alpha * (g * g)
    ga  = alpha * ga + c_alpha * g                           (centered only)
    den = sqrt(sq - ga * ga + eps) if centered else sqrt(sq + eps)       (eps inside the root)
    buf = momentum * buf + (klr * g) / den;  p = p - buf       (momentum > 0)
    p   = p + (-klr * g) / den                                 (otherwise)

``num`` is 1 (torch) or klr (keras) with momentum and -lr without, so either path divides once:
(num * g) / den. ``sqrt(sq + eps_in) + eps_out`` is exact for both: sq is never -0.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("sq", "ga", "buf"), unswitch=("keras", "centered", "use_buf"))
def rmsprop(lr: cython.floating, alpha: cython.floating, c_alpha: cython.floating, eps_in: cython.floating,
            eps_out: cython.floating, weight_decay: cython.floating, momentum: cython.floating,
            num: cython.floating, kwd: cython.floating, klr: cython.floating, centered: cython.bint,
            use_buf: cython.bint, keras: cython.bint, kdecay: cython.bint):
    si: cython.floating
    ai: cython.floating
    bi: cython.floating
    den: cython.floating
    if kdecay:
        pi = pi - pi * kwd * klr
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    # every local is assigned once per iteration on every path (Cython makes them lastprivate,
    # and gcc will not vectorize a loop whose live-out value comes from a conditional path)
    if keras:
        si = alpha * sq[i] + c_alpha * (gi * gi)
    else:
        si = alpha * sq[i] + c_alpha * gi * gi
    sq[i] = si
    ai = gi
    if centered:
        if keras:
            ai = alpha * ga[i] + c_alpha * gi
        else:
            ai = lerp(ga[i], gi, c_alpha)
        ga[i] = ai
    if centered:
        si = si - ai * ai
    den = sqrt(si + eps_in)  # one sqrt per element, for either convention
    den = den + eps_out
    bi = (num * gi) / den  # the step's one division: g / den (momentum) or (-lr * g) / den
    if use_buf:
        bi = momentum * buf[i] + bi
        buf[i] = bi
        p[i] = pi - lr * bi
    else:
        p[i] = pi + bi
