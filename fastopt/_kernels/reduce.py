# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Reductions and in-place elementwise clipping for gradients.

``norm_partials`` writes one partial result per chunk of ``chunk`` elements, accumulated in double:

    kind 0:  sum(x_i^2)            (2-norm squared)
    kind 1:  max(|x_i|)            (inf-norm; NaN propagates)
    kind 2:  sum(|x_i|^power)      (p-norm to the p)

Chunks have a fixed size, not one per thread, so the result does not depend on the number
of threads or the backend. A non-finite element makes its partial non-finite, which is
how callers detect non-finite gradients without a second pass.

``scale_clamp_`` does x = clamp(x * scale, -clip, clip) in place (clip_grad_norm_ and
clip_grad_value_).
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, scaled_grad, uidx
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, prange, scaled_grad, uidx


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _accumulate(s: cython.double, x: cython.double, kind: cython.int, power: cython.double) -> cython.double:
    if kind == 0:
        return s + x * x
    a: cython.double = abs(x)
    if kind == 1:
        if a > s or a != a:  # keep the first NaN
            return a
        return s
    return s + a ** power


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def norm_partials(x: cython.const[cython.floating][::1], out: cython.double[::1], chunk: cython.Py_ssize_t,
                  kind: cython.int, power: cython.double) -> cython.void:
    n: cython.Py_ssize_t = x.shape[0]
    nparts: cython.Py_ssize_t = out.shape[0]
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    s0: cython.double
    s1: cython.double
    s2: cython.double
    s3: cython.double
    for c in prange(nparts):
        lo = c * chunk
        hi = min(lo + chunk, n)
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        # four independent accumulators: the sum's order stays fixed without serializing on one
        for i in range(uidx(lo), uidx(lo + (hi - lo) // 4 * 4), 4):
            s0 = _accumulate(s0, x[i], kind, power)
            s1 = _accumulate(s1, x[i + 1], kind, power)
            s2 = _accumulate(s2, x[i + 2], kind, power)
            s3 = _accumulate(s3, x[i + 3], kind, power)
        for i in range(uidx(lo + (hi - lo) // 4 * 4), uidx(hi)):
            s0 = _accumulate(s0, x[i], kind, power)
        if kind == 1:
            out[c] = _accumulate(_accumulate(_accumulate(s0, s1, kind, power), s2, kind, power), s3, kind, power)
        else:
            out[c] = (s0 + s1) + (s2 + s3)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def scale_clamp_(x: cython.floating[::1], scale: cython.floating, clip: cython.floating,
                 nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = x.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            x[i] = scaled_grad(x[i], scale, clip)
