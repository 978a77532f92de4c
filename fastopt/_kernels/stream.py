# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""STREAM-like kernels that measure the memory ceiling the optimizer kernels are held to.

    copy:    b = a                 (read a, write b)
    triad:   a = b + s * c         (read b, c, write a; a write-only stream costs a
                                    write-allocate read on top)
    update:  a = a + s * b         (read a, b, write a: the read-modify-write pattern of
                                    every optimizer state)

Same chunking and threads as the optimizer kernels, so the ceiling is measured under the
conditions the optimizers run in.
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
def stream(a: cython.floating[::1], b: cython.floating[::1], c: cython.floating[::1],
           s: cython.floating, kind: cython.int, nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = a.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    k: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    for k in prange(nchunks):
        lo = k * chunk
        hi = min(lo + chunk, n)
        if kind == 0:
            for i in range(uidx(lo), uidx(hi)):
                b[i] = a[i]
        elif kind == 1:
            for i in range(uidx(lo), uidx(hi)):
                a[i] = b[i] + s * c[i]
        else:
            for i in range(uidx(lo), uidx(hi)):
                a[i] = a[i] + s * b[i]
