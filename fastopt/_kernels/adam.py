# cython: boundscheck=False, wraparound=False, cdivision=True, cpow=True, initializedcheck=False
"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), torch.optim's formulation.

    g  = clamp(grad * grad_scale, -clip, clip) + l2 * p        (l2: Adam's weight_decay)
    p  = p * decay                                             (decay: AdamW's 1 - lr * wd)
    m  = lerp(m, g, c1) = m + c1 * (g - m)                    (c1 = 1 - b1; torch's lerp)
    v  = b2 * v + c2 * g * g                                   (c2 = 1 - b2)
    vmax = max(vmax, v); v_hat = vmax if amsgrad else v
    p  = p + (-step_size * m) / (sqrt(v_hat) / bc2_sqrt + eps)

with step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t) computed in double per step.
"""
from __future__ import annotations

import cython

if cython.compiled:
    from cython.cimports.fastopt._kernels._common import chunk_size, lerp, scaled_grad, uidx
    from cython.cimports.libc.math import sqrt
    from cython.parallel import prange
else:  # Numba and plain Python; the Numba loader rebinds prange and uidx
    from fastopt._kernels._common import chunk_size, lerp, prange, scaled_grad, sqrt, uidx


@cython.ccall
@cython.nogil
@cython.exceptval(check=False)
def adam(p: cython.floating[::1], g: cython.const[cython.floating][::1], m: cython.floating[::1],
         v: cython.floating[::1], vmax: cython.floating[::1],
         step_size: cython.floating, bc2_sqrt: cython.floating, eps: cython.floating,
         c1: cython.floating, b2: cython.floating, c2: cython.floating,
         l2: cython.floating, decay: cython.floating, amsgrad: cython.bint,
         grad_scale: cython.floating, clip: cython.floating, nchunks: cython.Py_ssize_t) -> cython.void:
    n: cython.Py_ssize_t = p.shape[0]
    chunk: cython.Py_ssize_t = chunk_size(n, nchunks)
    c: cython.Py_ssize_t
    i: cython.Py_ssize_t
    lo: cython.Py_ssize_t
    hi: cython.Py_ssize_t
    gi: cython.floating
    pi: cython.floating
    mi: cython.floating
    vi: cython.floating
    s: cython.floating
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(lo + chunk, n)
        for i in range(uidx(lo), uidx(hi)):
            gi = scaled_grad(g[i], grad_scale, clip)
            pi = p[i]
            if l2 != 0:
                gi = gi + l2 * pi
            pi = pi * decay
            mi = lerp(m[i], gi, c1)
            vi = b2 * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            if amsgrad:
                if not (vmax[i] >= vi):  # written so that NaN propagates, as torch.maximum
                    vmax[i] = vi
                vi = vmax[i]
            s = sqrt(vi)
            p[i] = pi + (-step_size * mi) / (s / bc2_sqrt + eps)
