# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Adagrad (Duchi et al. 2011), torch.optim's formulation.

    g   = clamp(grad * grad_scale, -clip, clip) + weight_decay * p
    acc = acc + g * g
    p   = p + (-clr * g) / (sqrt(acc) + eps)

with clr = lr / (1 + (t - 1) * lr_decay) computed in double per step.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, scaled_grad, uidx
    from cython.cimports.libc.math import sqrt
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, prange, scaled_grad, sqrt, uidx


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adagrad(p: cython.floating[::1], g: cython.const[cython.floating][::1], acc: cython.floating[::1],
            clr: cython.floating, eps: cython.floating, weight_decay: cython.floating,
            grad_scale: cython.floating, clip: cython.floating,
            nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    ai: cython.floating
    s: cython.floating
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            gi = scaled_grad(g[i], grad_scale, clip)
            if weight_decay != 0:
                gi = gi + weight_decay * p[i]
            ai = acc[i] + gi * gi
            acc[i] = ai
            s = sqrt(ai)
            p[i] = p[i] + (-clr * gi) / (s + eps)
