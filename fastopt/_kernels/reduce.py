# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Reductions and in-place elementwise clipping for gradients.

``norm_partials`` writes one partial result per chunk of ``chunk`` elements, accumulated in double:

    kind 0:  sum(x_i^2)            (2-norm squared)
    kind 1:  max(|x_i|)            (inf-norm; NaN propagates)
    kind 2:  sum(|x_i|^power)      (p-norm to the p)

Each chunk is summed in ``width`` float64 lanes (element i of the chunk adds to lane i % width, as
the per-array kernels do), the lanes then added in order (``lanes`` holds width per chunk): the loop
vectorizes without reassociating. Four scalar accumulators before ran at 4-16 GB/s, one
float64 add latency per element. Chunks have a fixed size, not one per thread, so the result does not depend on the number
of threads or the backend. A non-finite element makes its partial non-finite, which is
how callers detect non-finite gradients without a second pass.

``scale_clamp_`` does x = clamp(x * scale, -clip, clip) in place (clip_grad_norm_ and
clip_grad_value_).
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, fixed_sum, scaled_grad, sq, uidx
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, fixed_sum, prange, scaled_grad, sq, uidx


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
def norm_partials(x: cython.const[cython.floating][::1], out: cython.double[::1], lanes: cython.double[::1],
                  chunk: cython.Py_ssize_t, width: cython.Py_ssize_t, kind: cython.int,
                  power: cython.double) -> cython.void:
    n: cython.Py_ssize_t = x.shape[0]
    nparts: cython.Py_ssize_t = out.shape[0]
    c: cython.Py_ssize_t
    k: cython.Py_ssize_t
    j: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    a: cython.Py_ssize_t
    base: cython.Py_ssize_t
    s: cython.double
    for c in prange(nparts):
        lo = c * chunk
        hi = min(lo + chunk, n)
        a = uidx(width * c)
        for j in range(uidx(0), uidx(width)):
            lanes[a + j] = 0.0
        # element lo + k * width + j adds to lane j: the loop over j vectorizes, and each lane's
        # order (so the sum) is fixed. One loop per kind, so no branch on it stays inside.
        if kind == 0:
            for k in range((hi - lo + width - 1) // width):
                base = uidx(lo + k * width)
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    lanes[a + j] += sq(x[base + j])
        elif kind == 1:
            for k in range((hi - lo + width - 1) // width):
                base = uidx(lo + k * width)
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    lanes[a + j] = _accumulate(lanes[a + j], x[base + j], 1, power)
        else:
            for k in range((hi - lo + width - 1) // width):
                base = uidx(lo + k * width)
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    lanes[a + j] = _accumulate(lanes[a + j], x[base + j], 2, power)
        if kind == 1:
            s = lanes[a]
            for j in range(uidx(1), uidx(width)):
                s = _accumulate(s, lanes[a + j], 1, power)
            out[c] = s
        else:
            out[c] = fixed_sum(lanes, a, width)


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
