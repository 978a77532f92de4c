"""The memory ceiling of ``python -m fastopt bench``: GB/s of STREAM-like copy, triad and update
kernels on fastopt's chunks and threads (``ceiling``), and one call of the update kernel to time
interleaved with a case (``ceiling_step``).
"""
from __future__ import annotations

import numpy as np

from fastopt._bench.timing import measure

STREAM_KINDS = {"copy": (0, 2), "triad": (1, 3), "update": (2, 3)}  # kernel kind, words per element


def ceiling(n, dtype="float32", backend=None, repeat_time=0.1):
    """The memory ceiling at ``n`` elements: GB/s of STREAM-like copy, triad and update kernels
    (fastopt's chunking and threads), and ``best``, the highest of them.

    Bytes count what each kernel reads and writes (no write-allocate), as for the optimizers.
    """
    from fastopt import _backends
    from fastopt.flat import alloc_staggered
    dtype = np.dtype(dtype)
    be = _backends.backend(backend)
    a, b, c = (alloc_staggered(n, dtype, fill=1.0) for _ in range(3))
    nchunks = _backends.chunks_for(n)
    kern = be.kernel("stream", dtype, nchunks > 1)
    steps = {kind: (lambda k=k: kern(a, b, c, 0.5, k, nchunks)) for kind, (k, _) in STREAM_KINDS.items()}
    stats = measure(steps, repeat_time=repeat_time)
    out = {kind: STREAM_KINDS[kind][1] * dtype.itemsize * n / st["median_s"] / 1e9 for kind, st in stats.items()}
    out["best"] = max(out.values())
    return out


def ceiling_step(n, dtype, backend=None):
    """A zero-argument call of the STREAM-like update kernel (a = a + s * b) over ``n`` elements."""
    from fastopt import _backends
    from fastopt.flat import alloc_staggered
    dtype = np.dtype(dtype)
    a, b = alloc_staggered(n, dtype, fill=1.0), alloc_staggered(n, dtype, fill=1e-3)
    nchunks = _backends.chunks_for(n)
    kern = _backends.backend(backend).kernel("stream", dtype, nchunks > 1)

    def update():
        kern(a, b, b, -0.0, 2, nchunks)  # s = -0: a stays 1.0, no drift to denormals or inf
    return update
