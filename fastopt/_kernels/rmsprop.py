# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""RMSprop (Hinton 2012; centered: Graves 2013), torch.optim's formulation.

    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    sq  = alpha * sq + c_alpha * g * g                       (c_alpha = 1 - alpha)
    ga  = lerp(ga, g, c_alpha) = ga + c_alpha * (g - ga)     (centered only; torch's lerp)
    den = sqrt(sq - ga * ga) + eps if centered else sqrt(sq) + eps
    buf = momentum * buf + g / den;  p = p - lr * buf          (momentum > 0)
    p   = p + (-lr * g) / den                                  (otherwise)

``num`` is 1 with momentum and -lr without, so either path divides once: (num * g) / den.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, lerp, scaled_grad, uidx
    from cython.cimports.libc.math import sqrt
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, lerp, prange, scaled_grad, sqrt, uidx


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def rmsprop(p: cython.floating[::1], g: cython.const[cython.floating][::1], sq: cython.floating[::1],
            ga: cython.floating[::1], buf: cython.floating[::1],
            lr: cython.floating, alpha: cython.floating, c_alpha: cython.floating,
            eps: cython.floating, weight_decay: cython.floating, momentum: cython.floating,
            num: cython.floating, centered: cython.bint, use_buf: cython.bint, grad_scale: cython.floating,
            clip: cython.floating, nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    pi: cython.floating
    si: cython.floating
    ai: cython.floating
    bi: cython.floating
    den: cython.floating
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            gi = scaled_grad(g[i], grad_scale, clip)
            pi = p[i]
            if weight_decay != 0:
                gi = gi + weight_decay * pi
            si = alpha * sq[i] + c_alpha * gi * gi
            sq[i] = si
            # every local is assigned once per iteration (Cython makes them lastprivate, and gcc
            # will not vectorize a loop whose live-out value comes from a conditional path)
            ai = gi
            if centered:
                ai = lerp(ga[i], gi, c_alpha)
                ga[i] = ai
            if centered:
                si = si - ai * ai
            den = sqrt(si)  # one sqrt per element on either path
            den = den + eps
            bi = (num * gi) / den  # the step's one division: g / den (momentum) or (-lr * g) / den
            if use_buf:
                bi = momentum * buf[i] + bi
                buf[i] = bi
                p[i] = pi - lr * bi
            else:
                p[i] = pi + bi
