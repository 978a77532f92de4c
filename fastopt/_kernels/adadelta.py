"""Adadelta (Zeiler 2012), torch.optim's formulation.

    g     = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    v     = rho * v + c_rho * g * g                          (c_rho = 1 - rho)
    delta = (sqrt(u + eps) / sqrt(v + eps)) * g              (eps inside both square roots; the old u)
    u     = rho * u + c_rho * delta * delta
    p     = p + (-lr) * delta

Every scalar is constant between group edits: Adadelta has no bias correction.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("v", "u"))
def adadelta(lr: cython.floating, rho: cython.floating, c_rho: cython.floating, eps: cython.floating,
             weight_decay: cython.floating):
    vi: cython.floating
    su: cython.floating
    sv: cython.floating
    di: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    vi = rho * v[i] + c_rho * gi * gi
    v[i] = vi
    # each root assigned to a local of the arrays' dtype: under Cython libc's sqrt returns a
    # double, and the arithmetic on it must not stay in double
    su = sqrt(u[i] + eps)
    sv = sqrt(vi + eps)
    di = su / sv * gi
    u[i] = rho * u[i] + c_rho * di * di
    p[i] = pi + (-lr) * di
