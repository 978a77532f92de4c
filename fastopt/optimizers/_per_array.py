"""The base of the rules whose update needs statistics of each whole parameter array (Lamb's and
LARS's trust ratios, Adafactor's factored moments and RMS clipping).

Such a rule runs one kernel call per parameter array (``per_array``: never one call for a run of
adjacent arrays, so views of one ``fastopt.flatten`` buffer keep their own statistics, but ONE flat
array passed as a parameter is one array to them) and several passes per call (``custom_call``):
a reduction pass whose float64 sums come back to Python, the per-array scalars computed from them
in double, then the update pass. The scratch the reductions need (float64 lanes and partials) is
allocated once per parameter, at its first step.
"""
from __future__ import annotations

import numpy as np

from fastopt import _backends
from fastopt.optimizers.base import Optimizer

#: float64 lanes per chunk of a reduction pass: element i of a chunk adds to lane i % LANES, so the
#: fused loop vectorizes and its sums do not depend on the compiler, the backend or the threads
LANES = 64


class PerArrayOptimizer(Optimizer):
    """An optimizer whose rule reads per-array statistics (see the module docstring)."""

    per_array = True
    custom_call = True

    def __init__(self, params, defaults, **kwargs):
        self._scratch = {}  # parameter index -> its scratch arrays
        super().__init__(params, defaults, **kwargs)

    def _scratch_for(self, call, key, size, dtype=np.float64):
        """The scratch array ``key`` of the call's parameter (allocated once, reused every step)."""
        k = (call.first, key)
        buf = self._scratch.get(k)
        if buf is None or buf.size != size or buf.dtype != dtype:
            buf = self._scratch[k] = np.zeros(size, dtype)
        return buf

    def _vector_work(self, call, key="vector"):
        """Scratch of a two-sum reduction over the call's ``size`` elements in fixed chunks:
        2 * LANES lanes and 2 partials per chunk, then the two totals (its last two entries)."""
        nparts = -(-call.size // _backends.NORM_CHUNK)
        return self._scratch_for(call, key, nparts * (2 * LANES + 2) + 2)
