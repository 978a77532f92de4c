# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Adafactor (Shazeer & Stern 2018): torch.optim's form and, with ``keras``, Keras 3's.

One set of kernels serves both: the forms differ only in a few operations, chosen by scalars
where one formula covers both (``_direction``, ``_moved``, ``_estimate``), by selects between cheap
values per element (``_average``, ``_decayed``, ``_direction``'s operands: a branch there kept
Numba's serial build from vectorizing one of the forms), or per row (``_mean``, the row factor)::

                          torch (keras = False)               Keras (keras = True)
    squared gradient      G = g * g                           G = g * g + eps1   (add_eps = eps1)
    moving average        lerp(x, mean, w)                    b2 * x + c2 * mean
    mean of n squares     sqrt(sum)**2 / n                    sum / n
    vector estimate       V = v                               V = v
    factored estimate     V = (R_i * C_j) / max(mean(R), e1)  V = (R_i / mean(R)) * C_j
    direction             U = (1 / sqrt(max(V, e1^2))) * g    U = g / sqrt(V)   (as (g / sqrt(V)) * 1)
    decayed parameter     pd = p * decay (last pass)          pd = p - p * wd * lr (every pass)
    update                p = pd + a * U  (as pd + a*(U/1))   p = pd + a * (U / s)

Every operation is the source's, in its order: where the forms differ in one place, a product
by one or a division by one makes a single formula exact for both. Here w = t**beta2_decay,
b2 = 1 - t**beta2_decay, c2 = 1 - b2, a = -alpha / max(1, RMS(U)/d) (torch) or a = -alpha,
s = max(1, RMS(U)/d) (Keras), alpha = max(eps2, RMS(p)) * min(lr, 1/sqrt(t)), all computed in
double between the passes from the float64 sums these kernels return.

Vectors and scalars (ndim < 2) take two passes: ``adafactor_vec_norms`` (reads g, p, v; writes
v; sums p^2 and U^2) and ``adafactor_vec_update`` (reads g, p, v; writes p). Arrays with
ndim >= 2, seen as ``nmat`` matrices of ``nrows`` x ``ncols`` (leading dims batched), take three:
``adafactor_mat_stats`` (reads g, p; updates R and C from the row and column sums of G; sums p^2),
``adafactor_mat_norm`` (reads g; sums U^2) and ``adafactor_mat_update`` (reads g, p; writes p).
RMS(U) needs every updated C, so U cannot be summed in the pass that forms the column sums, and
the update needs RMS(U): three passes is the least for a factored array.

Reductions never depend on the threads: vectors are cut in chunks of a fixed ``chunk``, each
matrix in ``nblk`` blocks of rows (a function of its shape), each summed in ``width`` float64 lanes
(see ``lamb``) and combined in a fixed order. ``work`` holds, for the vector kernels, the lanes
(2 * width per chunk), the chunk partials (2 per chunk) and the two totals; for the matrix
kernels the column partials (ncols per block), the lanes (2 * width per block), the block
partials and the total. ``rfac`` (nmat entries, the arrays' dtype) holds each matrix's mean(R)
(clamped by eps1 for torch). The R, C sums are rounded to the arrays' dtype (through the state
array itself, which all three backends convert alike) before the per-dtype math of the source.

Gradient accumulation: the first pass leaves the window's sum in ``acc``; the last pass reads it
there (``from_acc``) and zeroes it; ``adafactor_mat_norm``, which only reads, is handed ``acc``
as its gradient.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, lerp, restore_csr,
                                                          scaled_grad, sq, sqrt, uidx)
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange, uidx and the csr helpers
    from fastopt._kernels._common import (chunk_size, denormals_flushed, fixed_sum, lerp, prange, restore_csr,
                                          scaled_grad, sq, sqrt, uidx)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _average(old: cython.floating, new: cython.floating, w: cython.floating, b2: cython.floating,
             c2: cython.floating, keras: cython.bint) -> cython.floating:
    """The second moment's moving average (both forms computed, one selected: a select, not a
    branch, is what keeps the loops vectorized whichever the flag)."""
    k: cython.floating = b2 * old + c2 * new
    t: cython.floating = lerp(old, new, w)
    return k if keras else t


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _mean(s: cython.floating, nf: cython.floating, keras: cython.bint) -> cython.floating:
    """The mean of ``nf`` squares from their sum (torch: norm(g, dim).square() / n)."""
    q: cython.floating
    if keras:
        return s / nf
    q = sqrt(s)
    return (q * q) / nf


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _direction(gi: cython.floating, vi: cython.floating, e2: cython.floating, one: cython.floating,
               keras: cython.bint) -> cython.floating:
    """The unclipped update U: torch's (1 / sqrt(max(V, e2))) * g, or Keras's g / sqrt(V) (e2 = 0),
    both as (x / sqrt(V)) * y with x, y selected (exact: one division, a product by one)."""
    vc: cython.floating = e2 if vi < e2 else vi  # torch's clamp(V, eps1^2): NaN stays NaN
    x: cython.floating = gi if keras else one
    y: cython.floating = one if keras else gi
    r: cython.floating = sqrt(vc)  # a local first: under Cython libc's sqrt returns a double
    return (x / r) * y


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _decayed(pi: cython.floating, decay: cython.floating, wd: cython.floating, lr: cython.floating,
             kdecay: cython.bint) -> cython.floating:
    """The parameter after the weight decay (Keras's ``kdecay``: p - p * wd * lr; torch: p * decay)."""
    k: cython.floating = pi - pi * wd * lr
    t: cython.floating = pi * decay
    return k if kdecay else t


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _moved(pd: cython.floating, ui: cython.floating, a: cython.floating, s: cython.floating) -> cython.floating:
    """The parameter after the step: pd + a * (U / s) (torch's s is 1: exactly pd + a * U)."""
    return pd + a * (ui / s)


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _estimate(rv: cython.floating, cv: cython.floating, rf: cython.floating) -> cython.floating:
    """The factored second moment of one element: (R_i * C_j) / rf (Keras's rv is already
    R_i / mean(R) and its rf 1: exactly (R_i / mean(R)) * C_j)."""
    return (rv * cv) / rf


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adafactor_vec_norms(p: cython.const[cython.floating][::1], g: cython.const[cython.floating][::1],
                        v: cython.floating[::1], w: cython.floating, b2: cython.floating, c2: cython.floating,
                        add_eps: cython.floating, e2: cython.floating, one: cython.floating,
                        decay: cython.floating, wd: cython.floating, lr: cython.floating, kdecay: cython.bint,
                        keras: cython.bint, acc: cython.floating[::1], acc_s: cython.floating,
                        accumulate: cython.bint, grad_scale: cython.floating, clip: cython.floating,
                        work: cython.double[::1], chunk: cython.Py_ssize_t, width: cython.Py_ssize_t,
                        ftz: cython.bint) -> cython.void:
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
    vi: cython.floating
    csr: cython.uint
    for c in prange(nparts):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        lo = c * chunk
        hi = min(lo + chunk, n)
        a = uidx(2 * width * c)  # this chunk's p lanes, then its U lanes
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
                    gi = scaled_grad(gi, grad_scale, clip)
                    vi = _average(v[i], gi * gi + add_eps, w, b2, c2, keras)
                    v[i] = vi
                    work[a + j] += sq(_decayed(p[i], decay, wd, lr, kdecay))
                    work[b + j] += sq(_direction(gi, vi, e2, one, keras))
            else:  # the plain loop on its own (as _template's): the compilers tune it without the option
                for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):
                    i = base + j
                    gi = scaled_grad(g[i], grad_scale, clip)
                    vi = _average(v[i], gi * gi + add_eps, w, b2, c2, keras)
                    v[i] = vi
                    work[a + j] += sq(_decayed(p[i], decay, wd, lr, kdecay))
                    work[b + j] += sq(_direction(gi, vi, e2, one, keras))
        work[parts + c] = fixed_sum(work, a, width)
        work[parts + nparts + c] = fixed_sum(work, b, width)
        restore_csr(ftz, csr)
    work[parts + 2 * nparts] = fixed_sum(work, parts, nparts)
    work[parts + 2 * nparts + 1] = fixed_sum(work, parts + nparts, nparts)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adafactor_vec_update(p: cython.floating[::1], g: cython.const[cython.floating][::1],
                         v: cython.const[cython.floating][::1], e2: cython.floating, one: cython.floating,
                         decay: cython.floating, wd: cython.floating, lr: cython.floating, kdecay: cython.bint,
                         a: cython.floating, s: cython.floating, keras: cython.bint, acc: cython.floating[::1],
                         ema: cython.floating[::1], ema_m: cython.floating, ema_c: cython.floating,
                         from_acc: cython.bint, use_ema: cython.bint, grad_scale: cython.floating,
                         clip: cython.floating, nchunks: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    pn: cython.floating
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
                gi = scaled_grad(gi, grad_scale, clip)
                pn = _moved(_decayed(p[i], decay, wd, lr, kdecay), _direction(gi, v[i], e2, one, keras), a, s)
                p[i] = pn
                if use_ema:
                    ema[i] = ema_m * ema[i] + ema_c * pn
        else:  # the plain loop on its own (as _template's): the compilers tune it without the options
            for i in range(uidx(lo), uidx(hi)):
                gi = scaled_grad(g[i], grad_scale, clip)
                p[i] = _moved(_decayed(p[i], decay, wd, lr, kdecay), _direction(gi, v[i], e2, one, keras), a, s)
        restore_csr(ftz, csr)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adafactor_mat_stats(p: cython.const[cython.floating][::1], g: cython.const[cython.floating][::1],
                        row: cython.floating[::1], col: cython.floating[::1], rfac: cython.floating[::1],
                        w: cython.floating, b2: cython.floating, c2: cython.floating, add_eps: cython.floating,
                        eps1: cython.floating, rn: cython.floating, cn: cython.floating, decay: cython.floating,
                        wd: cython.floating, lr: cython.floating, kdecay: cython.bint, keras: cython.bint,
                        acc: cython.floating[::1], acc_s: cython.floating, accumulate: cython.bint,
                        grad_scale: cython.floating, clip: cython.floating, work: cython.double[::1],
                        nmat: cython.Py_ssize_t, nrows: cython.Py_ssize_t, ncols: cython.Py_ssize_t,
                        nblk: cython.Py_ssize_t, width: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    items: cython.Py_ssize_t = nmat * nblk
    rb: cython.Py_ssize_t = (nrows + nblk - 1) // nblk  # rows per block
    lanes: cython.Py_ssize_t = items * ncols  # the column partials come first
    parts: cython.Py_ssize_t = lanes + 2 * width * items
    wr: cython.Py_ssize_t = min(width, ncols)  # lanes a row sum uses
    t: cython.Py_ssize_t
    q: cython.Py_ssize_t
    r: cython.Py_ssize_t
    k: cython.Py_ssize_t
    i: cython.Py_ssize_t
    j: cython.Py_ssize_t
    m: cython.Py_ssize_t
    cp: cython.Py_ssize_t
    cb: cython.Py_ssize_t
    base: cython.Py_ssize_t
    a: cython.Py_ssize_t
    b: cython.Py_ssize_t
    gi: cython.floating
    x: cython.floating  # G of one element, added to float64 lanes (exactly)
    old: cython.floating
    mf: cython.floating
    s0: cython.double
    csr: cython.uint
    for t in prange(items):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        m = t // nblk
        cp = uidx(t * ncols)
        a = uidx(lanes + 2 * width * t)  # row lanes, then p lanes
        b = a + uidx(width)
        for j in range(uidx(0), uidx(ncols)):
            work[cp + j] = 0.0
        for j in range(uidx(0), uidx(2 * width)):
            work[a + j] = 0.0
        for r in range((t - m * nblk) * rb, min((t - m * nblk + 1) * rb, nrows)):
            for j in range(uidx(0), uidx(wr)):
                work[a + j] = 0.0
            for k in range((ncols + width - 1) // width):
                base = uidx(((m * nrows + r) * ncols) + k * width)
                cb = cp + uidx(k * width)
                if accumulate:
                    for j in range(uidx(0), uidx(min(width, ncols - k * width))):
                        i = base + j
                        gi = g[i] * acc_s + acc[i]
                        acc[i] = gi  # the window's sum stays for the later passes
                        gi = scaled_grad(gi, grad_scale, clip)
                        x = gi * gi + add_eps
                        work[a + j] += x
                        work[cb + j] += x
                        work[b + j] += sq(_decayed(p[i], decay, wd, lr, kdecay))
                else:  # the plain loop on its own (as _template's)
                    for j in range(uidx(0), uidx(min(width, ncols - k * width))):
                        i = base + j
                        gi = scaled_grad(g[i], grad_scale, clip)
                        x = gi * gi + add_eps
                        work[a + j] += x
                        work[cb + j] += x
                        work[b + j] += sq(_decayed(p[i], decay, wd, lr, kdecay))
            q = m * nrows + r
            old = row[q]
            row[q] = fixed_sum(work, a, wr)  # rounds the sum to the arrays' dtype
            row[q] = _average(old, _mean(row[q], cn, keras), w, b2, c2, keras)
        work[parts + t] = fixed_sum(work, b, width)
        restore_csr(ftz, csr)
    for q in prange(nmat * ncols):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        m = q // ncols
        s0 = 0.0
        for k in range(nblk):
            s0 = s0 + work[(m * nblk + k) * ncols + (q - m * ncols)]
        old = col[q]
        col[q] = s0
        col[q] = _average(old, _mean(col[q], rn, keras), w, b2, c2, keras)
        restore_csr(ftz, csr)
    for m in prange(nmat):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        s0 = 0.0
        for r in range(nrows):
            s0 = s0 + float(row[m * nrows + r])
        rfac[m] = s0
        mf = rfac[m] / rn
        if not keras:
            mf = eps1 if mf < eps1 else mf  # torch: max(mean(R), eps1), NaN stays NaN
        rfac[m] = mf
        restore_csr(ftz, csr)
    work[parts + items] = fixed_sum(work, parts, items)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adafactor_mat_norm(g: cython.const[cython.floating][::1], row: cython.const[cython.floating][::1],
                       col: cython.const[cython.floating][::1], rfac: cython.const[cython.floating][::1],
                       e2: cython.floating, one: cython.floating, keras: cython.bint, grad_scale: cython.floating,
                       clip: cython.floating, work: cython.double[::1], nmat: cython.Py_ssize_t,
                       nrows: cython.Py_ssize_t, ncols: cython.Py_ssize_t, nblk: cython.Py_ssize_t,
                       width: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    """(``g`` is the accumulator itself when a window's sum is in it: this pass only reads.)"""
    items: cython.Py_ssize_t = nmat * nblk
    rb: cython.Py_ssize_t = (nrows + nblk - 1) // nblk
    lanes: cython.Py_ssize_t = items * ncols
    parts: cython.Py_ssize_t = lanes + 2 * width * items
    t: cython.Py_ssize_t
    r: cython.Py_ssize_t
    k: cython.Py_ssize_t
    i: cython.Py_ssize_t
    j: cython.Py_ssize_t
    m: cython.Py_ssize_t
    cb: cython.Py_ssize_t
    base: cython.Py_ssize_t
    a: cython.Py_ssize_t
    gi: cython.floating
    rv: cython.floating
    rf: cython.floating
    ui: cython.floating
    csr: cython.uint
    for t in prange(items):
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        m = t // nblk
        a = uidx(lanes + 2 * width * t)  # U lanes
        for j in range(uidx(0), uidx(width)):
            work[a + j] = 0.0
        for r in range((t - m * nblk) * rb, min((t - m * nblk + 1) * rb, nrows)):
            rv = row[m * nrows + r]
            rf = rfac[m]
            if keras:  # V = (R_i / mean(R)) * C_j
                rv = rv / rf
                rf = one
            for k in range((ncols + width - 1) // width):
                base = uidx(((m * nrows + r) * ncols) + k * width)
                cb = uidx(m * ncols + k * width)
                for j in range(uidx(0), uidx(min(width, ncols - k * width))):
                    i = base + j
                    gi = scaled_grad(g[i], grad_scale, clip)
                    ui = _direction(gi, _estimate(rv, col[cb + j], rf), e2, one, keras)
                    work[a + j] += sq(ui)
        work[parts + t] = fixed_sum(work, a, width)
        restore_csr(ftz, csr)
    work[parts + items] = fixed_sum(work, parts, items)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adafactor_mat_update(p: cython.floating[::1], g: cython.const[cython.floating][::1],
                         row: cython.const[cython.floating][::1], col: cython.const[cython.floating][::1],
                         rfac: cython.const[cython.floating][::1], e2: cython.floating, one: cython.floating,
                         decay: cython.floating, wd: cython.floating, lr: cython.floating, kdecay: cython.bint,
                         a: cython.floating, s: cython.floating, keras: cython.bint, acc: cython.floating[::1],
                         ema: cython.floating[::1], ema_m: cython.floating, ema_c: cython.floating,
                         from_acc: cython.bint, use_ema: cython.bint, grad_scale: cython.floating,
                         clip: cython.floating, nmat: cython.Py_ssize_t, nrows: cython.Py_ssize_t,
                         ncols: cython.Py_ssize_t, ftz: cython.bint) -> cython.void:
    q: cython.Py_ssize_t
    m: cython.Py_ssize_t
    i: cython.Py_ssize_t
    j: cython.Py_ssize_t
    base: cython.Py_ssize_t
    cb: cython.Py_ssize_t
    gi: cython.floating
    rv: cython.floating
    rf: cython.floating
    pn: cython.floating
    csr: cython.uint
    for q in prange(nmat * nrows):  # one row per iteration: the update has no reduction
        csr = denormals_flushed(ftz)  # flush in every thread, as _template's chunks
        m = q // nrows
        rv = row[q]
        rf = rfac[m]
        if keras:  # V = (R_i / mean(R)) * C_j
            rv = rv / rf
            rf = one
        base = uidx(q * ncols)
        cb = uidx(m * ncols)
        if from_acc or use_ema:
            for j in range(uidx(0), uidx(ncols)):
                i = base + j
                if from_acc:
                    gi = acc[i]
                    acc[i] = 0
                else:
                    gi = g[i]
                gi = scaled_grad(gi, grad_scale, clip)
                pn = _moved(_decayed(p[i], decay, wd, lr, kdecay),
                            _direction(gi, _estimate(rv, col[cb + j], rf), e2, one, keras), a, s)
                p[i] = pn
                if use_ema:
                    ema[i] = ema_m * ema[i] + ema_c * pn
        else:  # the plain loop on its own (as _template's): the compilers tune it without the options
            for j in range(uidx(0), uidx(ncols)):
                i = base + j
                gi = scaled_grad(g[i], grad_scale, clip)
                p[i] = _moved(_decayed(p[i], decay, wd, lr, kdecay),
                              _direction(gi, _estimate(rv, col[cb + j], rf), e2, one, keras), a, s)
        restore_csr(ftz, csr)
