"""SGD with momentum, dampening and Nesterov (Sutskever et al. 2013): torch.optim's formulation,
and Keras 3's, where the learning rate lives inside the velocity.

torch (kdecay = False, c_nest = 1):
    g  = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    buf = b_mom * buf + c_damp * g      (torch's first step, buf = g: b_mom = 0, c_damp = 1)
    g  = c_nest * g + momentum * buf if nesterov else buf         (only when use_buf)
    p  = p - lr * g

keras (weight_decay = 0; b_mom = momentum, c_damp = c_nest = -klr; lr = -1 with momentum, klr without):
    p  = p - p * kwd * klr                                (kdecay: Keras's decoupled decay, first)
    buf = momentum * buf - klr * g
    p  = p + (momentum * buf - klr * g) if nesterov else p + buf
    p  = p - klr * g                                      (no momentum)

b_mom = momentum and c_damp = 1 - dampening after torch's first step. The buffer starts at
zero, so the first-step coefficients reproduce torch's clone exactly. The Keras forms reuse
torch's operations through their scalars (exactly: 1 * g = g, (-a) * b = -(a * b)), so only
the decay adds a flag.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("buf",), unswitch=("use_buf",))
def sgd(lr: cython.floating, momentum: cython.floating, b_mom: cython.floating, c_damp: cython.floating,
        c_nest: cython.floating, weight_decay: cython.floating, kwd: cython.floating, klr: cython.floating,
        use_buf: cython.bint, nesterov: cython.bint, kdecay: cython.bint):
    bi: cython.floating
    if kdecay:
        pi = pi - pi * kwd * klr
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    if use_buf:
        bi = b_mom * buf[i] + c_damp * gi
        buf[i] = bi
        if nesterov:
            gi = c_nest * gi + momentum * bi
        else:
            gi = bi
    p[i] = pi - lr * gi
