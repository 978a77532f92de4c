# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
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

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, scaled_grad, uidx
    from cython.cimports.libc.math import sqrt
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, prange, scaled_grad, sqrt, uidx


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def sgd(p: cython.floating[::1], g: cython.const[cython.floating][::1], buf: cython.floating[::1],
        lr: cython.floating, momentum: cython.floating, b_mom: cython.floating,
        c_damp: cython.floating, weight_decay: cython.floating, use_buf: cython.bint,
        nesterov: cython.bint, grad_scale: cython.floating, clip: cython.floating,
        nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    pi: cython.floating
    bi: cython.floating
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            gi = scaled_grad(g[i], grad_scale, clip)
            pi = p[i]
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
