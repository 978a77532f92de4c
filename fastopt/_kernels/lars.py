# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""LARS (You et al. 2017) as optax computes it: two passes over one parameter array.

Pass 1, ``lars_norms`` (reads g, p): one reduction over both::

    g = clamp(grad * grad_scale, -clip, clip)        (plus the accumulated sum, as _template)
    d = g + wd * p                                   (when wd != 0)
    sum(p * p), sum(d * d)                           (float64, squares of float64 values)

Pass 2, ``lars_update`` (reads g, p, buf; writes buf, p), with ratio = tc * ||p|| / (||d|| + eps)
computed in double in between::

    d   = lr * (d * ratio)
    buf = d + momentum * buf                         (use_buf: momentum != 0)
    p   = p - (d + momentum * buf if nesterov else buf)      (p - d without a buffer)

Gradient accumulation: pass 1 leaves the window's sum in ``acc`` (instead of zeroing it) and pass
2 reads the gradient from there (``from_acc``) and zeroes it, so both passes see the same sum.
The sums are deterministic whatever the threads (fixed chunks, float64 lanes: see ``lamb``);
``work`` holds the lanes, the chunk partials and, last, the two totals (||p||^2, ||d||^2).
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, restore_csr,
                                                          scaled_grad, sq, uidx)
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange, uidx and the csr helpers
    from fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, prange, restore_csr, scaled_grad,
                                          sq, uidx)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _direction(gi: cython.floating, pi: cython.floating, wd: cython.floating) -> cython.floating:
    """d = g + wd * p, as optax adds it only when wd != 0 (a select, not a branch)."""
    k: cython.floating = gi + wd * pi
    return k if wd != 0 else gi


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def lars_norms(p: cython.const[cython.floating][::1], g: cython.const[cython.floating][::1], wd: cython.floating,
               acc: cython.floating[::1], acc_s: cython.floating, accumulate: cython.bint,
               grad_scale: cython.floating, clip: cython.floating, work: cython.double[::1],
               chunk: cython.Py_ssize_t, width: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    nparts: cython.Py_ssize_t = (n + chunk - 1) // chunk
    parts: cython.Py_ssize_t = 2 * width * nparts
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
    pi: cython.floating
    csr: cython.uint
    for c in prange(nparts):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        lo = c * chunk
        hi = min(lo + chunk, n)
        a = uidx(2 * width * c)  # this chunk's p lanes, then its d lanes
        b = a + uidx(width)
        for j in range(uidx(0), uidx(2 * width)):
            work[a + j] = 0.0
        for k in range((hi - lo + width - 1) // width):
            base = uidx(lo + k * width)
            if accumulate:
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    i = base + j
                    gi = g[i] * acc_s + acc[i]
                    acc[i] = gi  # the window's sum stays for pass 2
                    pi = p[i]
                    work[a + j] += sq(pi)
                    work[b + j] += sq(_direction(scaled_grad(gi, grad_scale, clip), pi, wd))
            else:  # the plain loop on its own (as _template's): the compilers tune it without the option
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    i = base + j
                    pi = p[i]
                    work[a + j] += sq(pi)
                    work[b + j] += sq(_direction(scaled_grad(g[i], grad_scale, clip), pi, wd))
        work[parts + c] = fixed_sum(work, a, width)
        work[parts + nparts + c] = fixed_sum(work, b, width)
        restore_csr(ftz, csr)
    work[parts + 2 * nparts] = fixed_sum(work, parts, nparts)
    work[parts + 2 * nparts + 1] = fixed_sum(work, parts + nparts, nparts)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def lars_update(p: cython.floating[::1], g: cython.const[cython.floating][::1], buf: cython.floating[::1],
                wd: cython.floating, ratio: cython.floating, lr: cython.floating, momentum: cython.floating,
                use_buf: cython.bint, nesterov: cython.bint, acc: cython.floating[::1], ema: cython.floating[::1],
                ema_m: cython.floating, ema_c: cython.floating, from_acc: cython.bint, use_ema: cython.bint,
                grad_scale: cython.floating, clip: cython.floating, nchunks: cython.Py_ssize_t,
                ftz: cython.bint) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    pi: cython.floating
    bi: cython.floating
    csr: cython.uint
    for c in prange(nchunks):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        lo = c * chunk
        hi = min(lo + chunk, n)
        if from_acc or use_ema:
            for i in range(uidx(lo), uidx(hi)):
                if from_acc:
                    gi = acc[i]
                    acc[i] = 0
                else:
                    gi = g[i]
                pi = p[i]
                gi = lr * (_direction(scaled_grad(gi, grad_scale, clip), pi, wd) * ratio)
                bi = gi
                if use_buf:
                    bi = gi + momentum * buf[i]
                    buf[i] = bi
                    if nesterov:
                        bi = gi + momentum * bi
                pi = pi - bi
                p[i] = pi
                if use_ema:
                    ema[i] = ema_m * ema[i] + ema_c * pi
        else:  # the plain loop on its own (as _template's)
            for i in range(uidx(lo), uidx(hi)):
                pi = p[i]
                gi = lr * (_direction(scaled_grad(g[i], grad_scale, clip), pi, wd) * ratio)
                bi = gi
                if use_buf:
                    bi = gi + momentum * buf[i]
                    buf[i] = bi
                    if nesterov:
                        bi = gi + momentum * bi
                p[i] = pi - bi
        restore_csr(ftz, csr)
