"""Adagrad (Duchi et al. 2011): torch.optim's formulation, and Keras 3's.

torch (eps_in = 0, eps_out = eps, kdecay = False):
    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    sum = sum + g * g
    p   = p + (-clr * g) / (sqrt(sum) + eps)

with clr = lr / (1 + (t - 1) * lr_decay) computed in double per step.

keras (eps_in = eps, eps_out = 0, weight_decay = 0, clr = lr):
    p   = p - p * kwd * klr                                  (kdecay: Keras's decoupled decay, first)
    sum = sum + g * g
    p   = p + (-clr * g) / sqrt(sum + eps)                    (eps inside the root)

``sqrt(sum + eps_in) + eps_out`` is exact for both: sum is never -0, so adding a zero changes nothing.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("sums",))
def adagrad(clr: cython.floating, eps_in: cython.floating, eps_out: cython.floating, weight_decay: cython.floating,
            kwd: cython.floating, klr: cython.floating, kdecay: cython.bint):
    ai: cython.floating
    s: cython.floating
    if kdecay:
        pi = pi - pi * kwd * klr
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    ai = sums[i] + gi * gi
    sums[i] = ai
    s = sqrt(ai + eps_in)  # one sqrt per element, for either convention
    p[i] = pi + (-clr * gi) / (s + eps_out)
