"""Rprop (Riedmiller & Braun 1993), torch.optim's formulation.

    g    = clamp(grad * grad_scale, -clip, clip) + weight_decay * p   (weight_decay: fastopt's)
    q    = g * prev
    f    = eta_plus if q > 0, eta_minus if q < 0, else 1
    s    = clamp((lr if first else s) * f, smin, smax)
    g    = 0 where q < 0                     (a sign change: no move, prev forgets the gradient)
    p    = p - sign(g) * s;  prev = g        (sign(NaN) = 0, as torch's CPU sign)

``first`` (the first step) starts the step sizes at ``lr``, as torch does. ``one`` and ``zero``
are 1 and 0 in the arrays' dtype: assigned from literals, Numba would widen the locals to double.
Every choice is a select between two values, so the loop vectorizes.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("prev", "step_size"))
def rprop(first: cython.bint, lr: cython.floating, etaminus: cython.floating, etaplus: cython.floating,
          smin: cython.floating, smax: cython.floating, one: cython.floating, zero: cython.floating,
          weight_decay: cython.floating):
    qi: cython.floating
    fi: cython.floating
    si: cython.floating
    di: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    qi = gi * prev[i]
    fi = one
    if qi > 0:
        fi = etaplus
    if qi < 0:
        fi = etaminus
    si = step_size[i]
    if first:
        si = lr
    si = si * fi
    if si < smin:
        si = smin
    if si > smax:
        si = smax
    step_size[i] = si
    if qi < 0:
        gi = zero
    di = zero
    if gi > 0:
        di = one
    if gi < 0:
        di = -one
    p[i] = pi - di * si
    prev[i] = gi
