"""Adamax (Kingma & Ba 2015, section 7), torch.optim's formulation.

    g = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    m = lerp(m, g, c1)                                       (c1 = 1 - b1; torch's lerp)
    u = maximum(b2 * u, |g| + eps)                           (NaN in either operand propagates)
    p = p + (-clr * m) / u

with clr = lr / (1 - b1^t) computed in double per step.
"""
from __future__ import annotations

import cython

from fastopt._kernels._template import elementwise


@elementwise(states=("m", "u"))
def adamax(clr: cython.floating, eps: cython.floating, c1: cython.floating, b2: cython.floating,
           weight_decay: cython.floating):
    mi: cython.floating
    ui: cython.floating
    ai: cython.floating
    if weight_decay != 0:
        gi = gi + weight_decay * pi
    mi = lerp(m[i], gi, c1)
    m[i] = mi
    ui = b2 * u[i]
    ai = fabs(gi)  # a local first: under Cython libc's fabs returns a double
    ai = ai + eps
    # torch.maximum as two selects: the larger one, and a NaN |g| + eps wins too (a NaN
    # b2 * u fails the first test and stays)
    if ai > ui:
        ui = ai
    if ai != ai:
        ui = ai
    u[i] = ui
    p[i] = pi + (-clr * mi) / ui
