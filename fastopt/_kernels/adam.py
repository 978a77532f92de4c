"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019): torch.optim's formulation, and
Keras 3's (``keras``).

torch:
    g  = clamp(grad * grad_scale, -clip, clip) + l2 * p        (l2: Adam's weight_decay)
    p  = p * decay                                             (decay: AdamW's 1 - lr * wd)
    m  = lerp(m, g, c1) = m + c1 * (g - m)                    (c1 = 1 - b1; torch's lerp)
    v  = b2 * v + c2 * g * g                                   (c2 = 1 - b2)
    vmax = max(vmax, v); v_hat = vmax if amsgrad else v
    p  = p + (-step_size * m) / (sqrt(v_hat) / bc2_sqrt + eps)

with step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t) computed in double per step.

keras (l2 = 0, decay = 1, bc2_sqrt = 1, step_size = alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)):
    p  = p - p * kwd * klr                                     (kdecay: Keras's decoupled decay, first)
    m  = m + (g - m) * c1;  v = v + (g * g - v) * c2           (Keras's moving averages)
    p  = p + (-alpha * m) / (sqrt(v_hat) + eps)                (eps on the uncorrected sqrt(v))
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "v", "vmax"), unswitch=("keras", "amsgrad"))
def adam(step_size: cython.floating, bc2_sqrt: cython.floating, eps: cython.floating, c1: cython.floating,
         b2: cython.floating, c2: cython.floating, l2: cython.floating, decay: cython.floating,
         kwd: cython.floating, klr: cython.floating, amsgrad: cython.bint, keras: cython.bint,
         kdecay: cython.bint):
    mi: cython.floating
    vi: cython.floating
    s: cython.floating
    if kdecay:
        pi = pi - pi * kwd * klr
    if l2 != 0:
        gi = gi + l2 * pi
    pi = pi * decay
    if keras:
        mi = m[i] + (gi - m[i]) * c1
        vi = v[i] + (gi * gi - v[i]) * c2
    else:
        mi = lerp(m[i], gi, c1)
        vi = b2 * v[i] + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    if amsgrad:
        if not (vmax[i] >= vi):  # written so that NaN propagates, as torch.maximum
            vmax[i] = vi
        vi = vmax[i]
    s = sqrt(vi)
    p[i] = pi + (-step_size * mi) / (s / bc2_sqrt + eps)
