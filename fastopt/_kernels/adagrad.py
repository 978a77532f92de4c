"""Adagrad (Duchi et al. 2011), torch.optim's formulation.

    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    sum = sum + g * g
    p   = p + (-clr * g) / (sqrt(sum) + eps)

with clr = lr / (1 + (t - 1) * lr_decay) computed in double per step.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("sums",))
def adagrad(clr: cython.floating, eps: cython.floating, weight_decay: cython.floating):
    ai: cython.floating
    s: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    ai = sums[i] + gi * gi
    sums[i] = ai
    s = sqrt(ai)
    p[i] = pi + (-clr * gi) / (s + eps)
