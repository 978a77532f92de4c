# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""A gradient-accumulation micro-step (Keras's ``gradient_accumulation_steps``), fused with the
weight EMA that Keras also advances on such steps:

    acc = acc + grad * s                           (s unscales a loss-scaled gradient; 1 otherwise)
    ema = ema_m * ema + ema_c * p                  (use_ema only)

The k-th micro-step runs the optimizer's own kernel, which adds ``acc`` in its gradient
prologue and zeroes it (see ``_template``).
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, uidx
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, prange, uidx


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def accumulate(p: cython.floating[::1], g: cython.const[cython.floating][::1], acc: cython.floating[::1],
               ema: cython.floating[::1], s: cython.floating, ema_m: cython.floating, ema_c: cython.floating,
               use_ema: cython.bint, nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            acc[i] = acc[i] + g[i] * s
            if use_ema:
                ema[i] = ema_m * ema[i] + ema_c * p[i]
