"""ASGD, averaged SGD (Polyak & Juditsky 1992), torch.optim's formulation.

    g  = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    p  = p * decay;  p = p + neg_eta * g          (decay = 1 - lambd * eta, neg_eta = -eta)
    ax = ax + (p - ax) * mu if average, else p    (average: mu != 1)

with eta and mu the values torch leaves after the previous step, computed in double per step:
eta = lr / (1 + lambd * lr * (t - 1))^alpha, mu = 1 / max(1, (t - 1) - t0) (1 on the first).
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("ax",))
def asgd(decay: cython.floating, neg_eta: cython.floating, mu: cython.floating, average: cython.bint,
         weight_decay: cython.floating):
    ai: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    pi = pi * decay
    pi = pi + neg_eta * gi
    p[i] = pi
    ai = pi
    if average:
        ai = ax[i] + (pi - ax[i]) * mu
    ax[i] = ai
