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
(2 * width per chunk: p's, then U's), the chunk partials (2 per chunk) and the two totals; for the
matrix kernels the column partials (ncols per block), the lanes (2 * width per block: the row sum
of G's, then p's; ``adafactor_mat_norm`` sums U in the first width), the block partials (one per
block) and the total. ``rfac`` (nmat entries, the arrays' dtype) holds each matrix's mean(R)
(clamped by eps1 for torch). The R, C sums are rounded to the arrays' dtype (through the state
array itself, which all three backends convert alike) before the per-dtype math of the source.

Gradient accumulation: the first pass leaves the window's sum in ``acc``; the last pass reads it
there (``from_acc``) and zeroes it; ``adafactor_mat_norm``, which only reads, is handed ``acc``
as its gradient.

``_per_array_template`` writes the loops (the vector and rows layouts); the one loop here is the
finishing sum of each matrix's R, in ``matrix_end``.
"""
from __future__ import annotations

import cython

from fastopt._kernels._per_array_template import (column_end, matrix_end, reduction, row_end, row_start,
                                                  update)


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
def _row_term(rv: cython.floating, rf: cython.floating, keras: cython.bint) -> cython.floating:
    """A row's term of the factored estimate: R_i, or Keras's R_i / mean(R) (whose rf is then one)."""
    k: cython.floating = rv / rf
    return k if keras else rv


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(check=False)
def _estimate(rv: cython.floating, cv: cython.floating, rf: cython.floating) -> cython.floating:
    """The factored second moment of one element: (R_i * C_j) / rf (Keras's rv is already
    R_i / mean(R) and its rf 1: exactly (R_i / mean(R)) * C_j)."""
    return (rv * cv) / rf


@reduction(states=("v",), sums=("pd_sq", "u_sq"), grad="keep")
def adafactor_vec_norms(w: cython.floating, b2: cython.floating, c2: cython.floating, add_eps: cython.floating,
                        e2: cython.floating, one: cython.floating, decay: cython.floating, wd: cython.floating,
                        lr: cython.floating, kdecay: cython.bint, keras: cython.bint):
    vi: cython.floating
    vi = _average(v[i], gi * gi + add_eps, w, b2, c2, keras)
    v[i] = vi
    pd_sq += sq(_decayed(p[i], decay, wd, lr, kdecay))
    u_sq += sq(_direction(gi, vi, e2, one, keras))


@update(reads=("v",))
def adafactor_vec_update(e2: cython.floating, one: cython.floating, decay: cython.floating, wd: cython.floating,
                         lr: cython.floating, kdecay: cython.bint, a: cython.floating, s: cython.floating,
                         keras: cython.bint):
    p[i] = _moved(_decayed(p[i], decay, wd, lr, kdecay), _direction(gi, v[i], e2, one, keras), a, s)


@reduction(layout="rows", states=("row", "col", "rfac"), row_sums=("g_row",), column_sums=("g_col",),
           sums=("pd_sq",), grad="keep", lane_groups=2)
def adafactor_mat_stats(w: cython.floating, b2: cython.floating, c2: cython.floating, add_eps: cython.floating,
                        eps1: cython.floating, rn: cython.floating, cn: cython.floating, decay: cython.floating,
                        wd: cython.floating, lr: cython.floating, kdecay: cython.bint, keras: cython.bint):
    x: cython.floating  # G of one element, added to float64 lanes (exactly)
    old: cython.floating
    mf: cython.floating
    r_sum: cython.double
    x = gi * gi + add_eps
    g_row += x
    g_col += x
    pd_sq += sq(_decayed(p[i], decay, wd, lr, kdecay))
    with row_end:  # R from the row's sum, rounded to the arrays' dtype through R itself
        old = row[q]
        row[q] = g_row
        row[q] = _average(old, _mean(row[q], cn, keras), w, b2, c2, keras)
    with column_end:  # C likewise, from the column's sum over the blocks
        old = col[cj]
        col[cj] = g_col
        col[cj] = _average(old, _mean(col[cj], rn, keras), w, b2, c2, keras)
    with matrix_end:  # mean(R) of matrix m: its rows' R added in order in float64
        r_sum = 0.0
        for r in range(nrows):
            r_sum = r_sum + float(row[m * nrows + r])
        rfac[m] = r_sum
        mf = rfac[m] / rn
        if not keras:
            mf = eps1 if mf < eps1 else mf  # torch: max(mean(R), eps1), NaN stays NaN
        rfac[m] = mf


@reduction(layout="rows", reads=("row", "col", "rfac"), sums=("u_sq",), grad="read", param=False, lane_groups=2)
def adafactor_mat_norm(e2: cython.floating, one: cython.floating, keras: cython.bint):
    """(``g`` is the accumulator itself when a window's sum is in it: this pass only reads.)"""
    rv: cython.floating
    rf: cython.floating
    with row_start:  # V = (R_i * C_j) / rf; Keras's as (R_i / mean(R)) * C_j (rf = one)
        rv = _row_term(row[q], rfac[m], keras)
        rf = one if keras else rfac[m]
    u_sq += sq(_direction(gi, _estimate(rv, col[cj], rf), e2, one, keras))


@update(layout="rows", reads=("row", "col", "rfac"))
def adafactor_mat_update(e2: cython.floating, one: cython.floating, decay: cython.floating, wd: cython.floating,
                         lr: cython.floating, kdecay: cython.bint, a: cython.floating, s: cython.floating,
                         keras: cython.bint):
    rv: cython.floating
    rf: cython.floating
    with row_start:  # as adafactor_mat_norm's
        rv = _row_term(row[q], rfac[m], keras)
        rf = one if keras else rfac[m]
    p[i] = _moved(_decayed(p[i], decay, wd, lr, kdecay), _direction(gi, _estimate(rv, col[cj], rf), e2, one, keras),
                  a, s)
