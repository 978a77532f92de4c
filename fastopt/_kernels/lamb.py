# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""LAMB (You et al. 2019) as Keras 3 computes it: two passes over one parameter array.

Pass 1, ``lamb_norms`` (reads g, p, m, v; writes m, v)::

    g  = clamp(grad * grad_scale, -clip, clip)       (plus the accumulated sum, as _template)
    pd = p - p * wd * lr                             (Keras's decoupled decay; ``decay`` flag)
    m  = m + (g - m) * c1;  v = v + (g * g - v) * c2          (c1 = 1 - b1, c2 = 1 - b2)
    r  = (m / bc1) / (sqrt(v / bc2) + eps)                    (bc1 = 1 - b1^t, bc2 = 1 - b2^t)
    sum(r * r), sum(pd * pd)                                  (float64, squares of float64 values)

Pass 2, ``lamb_update`` (reads p, m, v; writes p; r recomputed from m and v, no temporaries)::

    p  = pd - step * r                               (step = ratio * lr, ratio = ||pd|| / ||r||)

The sums are deterministic whatever the threads: chunks of a fixed ``chunk`` elements, each
summed in ``width`` interleaved float64 lanes (element i of a chunk adds to lane i % width, so the
loop vectorizes without reassociating), lanes and chunks added in a fixed order. ``work`` holds
the lanes (2 * width per chunk), the chunk partials (2 per chunk) and, last, the two totals.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, restore_csr,
                                                          scaled_grad, sq, sqrt, uidx)
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange, uidx and the csr helpers
    from fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, prange, restore_csr, scaled_grad,
                                          sq, sqrt, uidx)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _direction(mi: cython.floating, vi: cython.floating, bc1: cython.floating, bc2: cython.floating,
               eps: cython.floating) -> cython.floating:
    """The unscaled update r of one element (Keras: m_hat / (sqrt(v_hat) + eps))."""
    r: cython.floating = sqrt(vi / bc2)  # a local first: under Cython libc's sqrt returns a double
    return (mi / bc1) / (r + eps)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _decayed(pi: cython.floating, wd: cython.floating, lr: cython.floating, decay: cython.bint) -> cython.floating:
    """The parameter after Keras's decay (``decay``): p - p * wd * lr (a select, not a branch)."""
    k: cython.floating = pi - pi * wd * lr
    return k if decay else pi


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def lamb_norms(p: cython.const[cython.floating][::1], g: cython.const[cython.floating][::1],
               m: cython.floating[::1], v: cython.floating[::1], c1: cython.floating, c2: cython.floating,
               bc1: cython.floating, bc2: cython.floating, eps: cython.floating, wd: cython.floating,
               lr: cython.floating, decay: cython.bint, acc: cython.floating[::1], acc_s: cython.floating,
               accumulate: cython.bint, grad_scale: cython.floating, clip: cython.floating,
               work: cython.double[::1], chunk: cython.Py_ssize_t, width: cython.Py_ssize_t,
               ftz: cython.bint) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    nparts: cython.Py_ssize_t = (n + chunk - 1) // chunk
    parts: cython.Py_ssize_t = 2 * width * nparts  # where the chunk partials start
    c: cython.Py_ssize_t
    k: cython.Py_ssize_t
    i: cython.Py_ssize_t
    j: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    base: cython.Py_ssize_t
    a: cython.Py_ssize_t
    b: cython.Py_ssize_t
    gi: cython.floating
    mi: cython.floating
    vi: cython.floating
    csr: cython.uint
    for c in prange(nparts):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        lo = c * chunk
        hi = min(lo + chunk, n)
        a = uidx(2 * width * c)  # this chunk's r lanes, then its pd lanes
        b = a + uidx(width)
        for j in range(uidx(0), uidx(2 * width)):
            work[a + j] = 0.0
        for k in range((hi - lo + width - 1) // width):
            base = uidx(lo + k * width)
            if accumulate:
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    i = base + j
                    gi = scaled_grad(g[i] * acc_s + acc[i], grad_scale, clip)
                    acc[i] = 0
                    mi = m[i] + (gi - m[i]) * c1
                    vi = v[i] + (gi * gi - v[i]) * c2
                    m[i] = mi
                    v[i] = vi
                    work[a + j] += sq(_direction(mi, vi, bc1, bc2, eps))
                    work[b + j] += sq(_decayed(p[i], wd, lr, decay))
            else:  # the plain loop on its own (as _template's): the compilers tune it without the option
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    i = base + j
                    gi = scaled_grad(g[i], grad_scale, clip)
                    mi = m[i] + (gi - m[i]) * c1
                    vi = v[i] + (gi * gi - v[i]) * c2
                    m[i] = mi
                    v[i] = vi
                    work[a + j] += sq(_direction(mi, vi, bc1, bc2, eps))
                    work[b + j] += sq(_decayed(p[i], wd, lr, decay))
        work[parts + c] = fixed_sum(work, a, width)
        work[parts + nparts + c] = fixed_sum(work, b, width)
        restore_csr(ftz, csr)
    work[parts + 2 * nparts] = fixed_sum(work, parts, nparts)
    work[parts + 2 * nparts + 1] = fixed_sum(work, parts + nparts, nparts)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def lamb_update(p: cython.floating[::1], m: cython.const[cython.floating][::1],
                v: cython.const[cython.floating][::1], bc1: cython.floating, bc2: cython.floating,
                eps: cython.floating, wd: cython.floating, lr: cython.floating, decay: cython.bint,
                step: cython.floating, ema: cython.floating[::1], ema_m: cython.floating, ema_c: cython.floating,
                use_ema: cython.bint, nchunks: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    pi: cython.floating
    csr: cython.uint
    for c in prange(nchunks):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        lo = c * chunk
        hi = min(lo + chunk, n)
        if use_ema:
            for i in range(uidx(lo), uidx(hi)):
                pi = _decayed(p[i], wd, lr, decay) - step * _direction(m[i], v[i], bc1, bc2, eps)
                p[i] = pi
                ema[i] = ema_m * ema[i] + ema_c * pi
        else:  # the plain loop on its own (as _template's)
            for i in range(uidx(lo), uidx(hi)):
                p[i] = _decayed(p[i], wd, lr, decay) - step * _direction(m[i], v[i], bc1, bc2, eps)
        restore_csr(ftz, csr)
