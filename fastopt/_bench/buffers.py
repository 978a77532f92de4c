"""The benchmarks' buffers: staggered flat (params, grads) pairs of any size with deterministic
values (``flat_pair``), and the gradient scales they can take (``GRAD_SCALES``: normal or denormal).
"""
from __future__ import annotations

import numpy as np

_BLOCK = 65536
_blocks = {}


def _block(dtype):
    """One block of deterministic (params, grads) values, tiled to any size (cheap even at 16M)."""
    key = np.dtype(dtype).str
    if key not in _blocks:
        rng = np.random.default_rng(0)
        # grads ~ N(0, 1e-2): g*g stays far from float32 denormals, which would slow every impl
        p = rng.standard_normal(_BLOCK).astype(dtype)
        g = (rng.standard_normal(_BLOCK) * 1e-2).astype(dtype)
        _blocks[key] = (p, g)
    return _blocks[key]


def _fill_tiled(dst, block):
    k = block.size
    full = dst.size // k
    dst[:full * k].reshape(full, k)[...] = block
    dst[full * k:] = block[:dst.size - full * k]


#: gradient scales: ``denormal`` puts float32 gradients at ~1e-39, below the smallest normal
#: float32 (1.2e-38): over 99% of them, their squares and the states they feed are denormals
GRAD_SCALES = {"normal": 1.0, "denormal": 1e-37}


def flat_pair(n, dtype, grads="normal"):
    """Fresh staggered (params, grads) buffers of ``n`` elements with deterministic values."""
    from fastopt.flat import alloc_staggered
    p0, g0 = _block(dtype)
    p = alloc_staggered(n, dtype, fill=None)
    g = alloc_staggered(n, dtype, fill=None)
    _fill_tiled(p, p0)
    _fill_tiled(g, g0)
    if GRAD_SCALES[grads] != 1.0:
        g *= np.dtype(dtype).type(GRAD_SCALES[grads])
    return p, g
