"""Names the kernels share, as plain Python.

Under Cython the kernels cimport the typed equivalents from ``_common.pxd`` instead;
under Numba the backend loader rebinds ``prange`` and ``uidx`` in its copy of each
kernel module.
"""
from __future__ import annotations

from numpy import abs as fabs  # noqa: F401  (dtype-preserving: float32 stays float32)
from numpy import exp, log, sqrt  # noqa: F401
from numpy import power as pow  # noqa: F401, A004

prange = range


def uidx(i):
    """An index as unsigned (Numba skips negative-index wraparound, so loops vectorize)."""
    return i


#: MXCSR's flush-to-zero (FTZ, bit 15) and denormals-are-zero (DAZ, bit 6) bits
FTZ_DAZ = 0x8040


def denormals_flushed(ftz):
    """With ``ftz``, set FTZ and DAZ in this thread's SSE control register; returns the
    register's value before, for :func:`restore_csr` (plain Python: nothing to set, 0).
    The compiled backends use the MXCSR intrinsics: ``_common.pxd`` and ``_backends``."""
    return 0


def restore_csr(ftz, csr):
    """Undo :func:`denormals_flushed`."""


def chunk_size(n, nchunks):
    """Elements per chunk when ``n`` elements are split in ``nchunks`` (a multiple of 16,
    so every chunk but the last starts on a 64-byte boundary of float32 data)."""
    return ((n + nchunks - 1) // nchunks + 15) // 16 * 16


def scaled_grad(gi, grad_scale, clip):
    """``gi * grad_scale`` clamped to ``[-clip, clip]``; NaN stays NaN."""
    gi = gi * grad_scale
    if gi > clip:
        gi = clip
    elif gi < -clip:
        gi = -clip
    return gi


def lerp(a, b, w):
    """torch's lerp: ``a + w * (b - a)``, or ``b - (b - a) * (1 - w)`` when ``w >= 0.5``, with
    ``1 - w`` computed in the arrays' dtype as torch does (torch.optim uses lerp for Adam's first
    moment and centered RMSprop's mean gradient)."""
    # both forms and a select: Numba kept a branch on w in its vector loop, and at 1M-4M elements
    # on 2 threads Adam ran 1.2-1.9x slower than the same loop without it (Cython's _common.pxd
    # keeps the branch: GCC unswitches it)
    lo = a + w * (b - a)
    hi = b - (b - a) * (w / w - w)  # w / w: an exact 1 of w's dtype (a literal 1.0 is float64)
    return lo if w < 0.5 else hi


def fixed_sum(x, start, count):
    """``x[start] + x[start + 1] + ... + x[start + count - 1]``, added in that order (float64
    partials of the per-array reductions: a fixed order keeps the sums independent of threads)."""
    s = 0.0
    for k in range(count):
        s = s + x[start + k]
    return s


def sq(x: cython.double) -> cython.double:  # noqa: F821  (an annotation only: the C type, read by the backends)
    """``x * x`` in double: the argument converts to double first (per-array sums of squares
    accumulate in double; ``float(x)`` does not convert under Numba, a typed argument does)."""
    return x * x
