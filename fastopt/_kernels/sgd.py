"""SGD with momentum, dampening and Nesterov (Sutskever et al. 2013), torch.optim's formulation.

    g  = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    buf = b_mom * buf + c_damp * g      (torch's first step, buf = g: b_mom = 0, c_damp = 1)
    g  = g + momentum * buf if nesterov else buf         (only when use_buf)
    p  = p - lr * g

b_mom = momentum and c_damp = 1 - dampening after the first step. The buffer starts at
zero, so the first-step coefficients reproduce torch's clone exactly.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("buf",))
def sgd(lr: cython.floating, momentum: cython.floating, b_mom: cython.floating, c_damp: cython.floating,
        weight_decay: cython.floating, use_buf: cython.bint, nesterov: cython.bint):
    bi: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    if use_buf:
        bi = b_mom * buf[i] + c_damp * gi
        buf[i] = bi
        if nesterov:
            gi = gi + momentum * bi
        else:
            gi = bi
    p[i] = pi - lr * gi
