# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Conversions between float arrays and bfloat16/float16 storage, held as its bits (uint16), in
one kernel (the format and the direction chosen per call, outside the element loops):

    convert_(x, h, fmt, mode, key, base, nchunks), ``fmt`` 0: bfloat16, 1: float16 (``_lowp.BF16``,
    ``_lowp.F16``), ``mode`` (``_lowp.DECODE``, ``NEAREST``, ``STOCHASTIC``):
        0: x[i] = the value of the bits h[i] (exact)
        1: h[i] = the bits of x[i] rounded to nearest even
        2: h[i] = the bits of x[i] rounded stochastically with the bits random_bits(key, base + i)
           (so the same key and element index give the same bits whatever the chunking, the
           threads or the backend)

A float64 ``x`` rounds to float32 first, as the storage modes compute in float32 (``_lowp``
defines every conversion); decoded into float64, the float32 value converts exactly (a signaling
NaN comes out quiet, as the hardware converts it). State_dict conversions and the tests use it.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, uidx
    from cython.cimports.fastopt._kernels._lowp import (bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_bf16_stochastic,
                                                        f32_to_f16, f32_to_f16_stochastic, random_bits)
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange, uidx and the bit casts
    from fastopt._kernels._common import chunk_size, prange, uidx
    from fastopt._kernels._lowp import (bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_bf16_stochastic, f32_to_f16,
                                        f32_to_f16_stochastic, random_bits)


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def convert_(x: cython.floating[::1], h: cython.ushort[::1], fmt: cython.int, mode: cython.int, key: cython.uint,
             base: cython.size_t, nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = x.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    k: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    for k in prange(nchunks):
        lo = k * chunk
        hi = min(lo + chunk, n)
        # base + i: unsigned on every backend (Numba types a signed + unsigned sum as a float)
        if mode == 0 and fmt == 0:
            for i in range(uidx(lo), uidx(hi)):
                x[i] = bf16_to_f32(h[i])
        elif mode == 0:
            for i in range(uidx(lo), uidx(hi)):
                x[i] = f16_to_f32(h[i])
        elif mode == 1 and fmt == 0:
            for i in range(uidx(lo), uidx(hi)):
                h[i] = f32_to_bf16(x[i])
        elif mode == 1:
            for i in range(uidx(lo), uidx(hi)):
                h[i] = f32_to_f16(x[i])
        elif fmt == 0:
            for i in range(uidx(lo), uidx(hi)):
                h[i] = f32_to_bf16_stochastic(x[i], random_bits(key, base + i))
        else:
            for i in range(uidx(lo), uidx(hi)):
                h[i] = f32_to_f16_stochastic(x[i], random_bits(key, base + i))
