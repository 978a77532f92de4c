"""The operations several NumPy reference modules share: torch's ``lerp`` and the float64 norms."""
from __future__ import annotations

import math

import numpy as np


def _lerp(a, b, w):
    """torch.lerp(a, b, w): ``a + w * (b - a)``, or ``b - (b - a) * (1 - w)`` when w >= 0.5, with
    ``1 - w`` computed in the arrays' dtype (torch casts the weight first: 1 - float32(0.8) is not
    float32(0.2))."""
    if w < 0.5:
        return a + w * (b - a)
    one, weight = a.dtype.type(1), a.dtype.type(w)
    return b - (b - a) * (one - weight)


def _vector_norm(x, ord):
    """torch.linalg.vector_norm of ``x`` flattened, accumulated in float64."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 and ord == math.inf:
        return 0.0  # torch raises here (max has no identity); 0 is the natural answer for |x| >= 0
    return float(np.linalg.norm(x, ord))


def _norm(x):
    """||x||_2 of the whole array (any shape, flattened), accumulated in float64, as a Python float."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(np.sqrt(np.dot(x, x)))
