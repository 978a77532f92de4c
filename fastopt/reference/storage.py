"""Low-precision storage, written from its definitions: bfloat16 and float16 values from float32 with
nearest-even and stochastic rounding, and the counter-based random bits of the stochastic rounding.

Whole-array NumPy, in uint32 arithmetic on float32 bit patterns (``u``; ``a`` its magnitude, ``s``
its sign at bit 15): the oracle that the conversion kernels (``fastopt/_kernels/_lowp.py``, which
states the same definitions) equal bit for bit. Float64 input rounds to float32 first (nearest
even), as torch and ml_dtypes convert doubles. bfloat16 arrays are ``ml_dtypes.bfloat16``, float16
arrays NumPy's; either may also be given as their bits (``uint16``).

- nearest even, bfloat16: ``(u + 0x7FFF + ((u >> 16) & 1)) >> 16``; NaN -> ``s | 0x7FC0``
  (ml_dtypes' result; torch's ``Tensor.bfloat16()`` writes ``0xFFFF`` for every NaN);
- stochastic, bfloat16: ``(u + (r & 0xFFFF)) >> 16``, ``r = random_bits(step_key(seed, step),
  index_base + i)`` for the element at flat (C-order) position ``i``;
- float16: NumPy's ``astype(float16)`` of the float32 value; stochastically, the float16 bits with
  13 more fraction bits (``t``) plus ``r & 0x1FFF``, shifted down by 13;
- ``random_bits(key, index) = hash32(key ^ lo ^ hi * 0x9E3779B9)`` over the index's 32-bit halves,
  ``hash32`` Chris Wellons' lowbias32; ``step_key`` chains ``hash32`` over (seed, step)'s words.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

bfloat16 = ml_dtypes.bfloat16
M32 = 0xFFFFFFFF


def _u32(x):
    """The float32 bit patterns of ``x`` (uint32, same shape; float64 rounds to float32 first)."""
    with np.errstate(over="ignore", invalid="ignore"):  # doubles past float32's range: infinity
        return np.asarray(x, np.float32).view(np.uint32)


def _f32(u):
    return np.asarray(u, np.uint32).view(np.float32)


def _bits16(h):
    """The 16 bits of a bfloat16/float16/uint16 array as uint32."""
    return np.asarray(h).view(np.uint16).astype(np.uint32)


def hash32(x):
    """lowbias32 (Chris Wellons): a low-bias bijection of 32-bit words, in uint32 arithmetic."""
    x = np.array(x, np.uint32, ndmin=1)
    x ^= x >> 16
    x *= np.uint32(0x7FEB352D)
    x ^= x >> 15
    x *= np.uint32(0x846CA68B)
    x ^= x >> 16
    return x


def random_bits(key, index):
    """32 random bits per element index (an array of non-negative integers), for a step's ``key``."""
    index = np.asarray(index, np.uint64)
    lo = (index & np.uint64(M32)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    return hash32(np.uint32(key) ^ lo ^ (hi * np.uint32(0x9E3779B9))).reshape(index.shape)


def step_key(seed, step):
    """The 32-bit key of step ``step`` in the random stream ``seed`` (``0 <= seed, step < 2**64``)."""
    if not (0 <= seed < 2**64 and 0 <= step < 2**64):
        raise ValueError(f"seed and step must be integers in [0, 2**64), got seed={seed}, step={step}")
    h = np.uint32(0x2545F491)
    for word in (seed & M32, seed >> 32, step & M32, step >> 32):
        h = hash32(h ^ np.uint32(word))[0]
    return int(h)


def _element_bits(x, seed, step, index_base):
    """The random bits of each element of ``x``: element ``i`` (C order) has index ``index_base + i``."""
    index = np.uint64(index_base) + np.arange(np.size(x), dtype=np.uint64)
    return random_bits(step_key(seed, step), index).reshape(np.shape(x))


def _bf16(u, h):
    """bfloat16 bits ``h`` of the float32 bits ``u``, a NaN as ``s | 0x7FC0``."""
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) & 0x8000) | 0x7FC0, h).astype(np.uint16).view(bfloat16)


def to_bf16_nearest(x):
    """``x`` rounded to bfloat16, to nearest, ties to even (overflow to infinity)."""
    u = _u32(x)
    return _bf16(u, (u + 0x7FFF + ((u >> 16) & 1)) >> 16)


def to_bf16_stochastic(x, seed, step, index_base=0):
    """``x`` rounded to bfloat16 stochastically: up in magnitude with probability the dropped fraction."""
    u = _u32(x)
    return _bf16(u, (u + (_element_bits(x, seed, step, index_base) & 0xFFFF)) >> 16)


def from_bf16(h):
    """The float32 values of bfloat16 ``h`` (exact)."""
    return _f32(_bits16(h) << 16)


def _f16(u, normal, subnormal):
    """Float16 bits: ``normal(t)`` of ``t = min(a, 0x47800000) - 0x38000000`` from ``2**-14`` on,
    ``subnormal(|x|)`` below, NumPy's NaN (the top 10 payload bits, at least 1) for a NaN."""
    a = u & 0x7FFFFFFF
    with np.errstate(over="ignore", invalid="ignore"):
        h = np.where(a < 0x38800000, subnormal(_f32(a)), normal(np.minimum(a, 0x47800000) - 0x38000000))
    payload = (a >> 13) & 0x3FF
    h = np.where(a > 0x7F800000, 0x7C00 | np.maximum(payload, 1), h)
    return (((u >> 16) & 0x8000) | h).astype(np.uint16).view(np.float16)


def to_f16_nearest(x):
    """``x`` rounded to float16, to nearest, ties to even: NumPy's ``astype(float16)`` of float32 ``x``."""
    return _f16(_u32(x), lambda t: (t + 0xFFF + ((t >> 13) & 1)) >> 13,
                lambda ax: _u32(ax + np.float32(0.5)) - 0x3F000000)  # |x| + 0.5 rounds at 2**-24


def to_f16_stochastic(x, seed, step, index_base=0):
    """``x`` rounded to float16 stochastically (13 random bits; below ``2**-14`` the value is first
    rounded to nearest at ``2**-37``, 1/8192 of the subnormal spacing)."""
    r = _element_bits(x, seed, step, index_base) & 0x1FFF
    return _f16(_u32(x), lambda t: (t + r) >> 13,
                lambda ax: (_u32(ax + np.float32(2.0**-14)) - 0x38800000 + r) >> 13)


def from_f16(h):
    """The float32 values of float16 ``h`` (exact; a NaN keeps its payload)."""
    h = _bits16(h)
    s, e, m = (h & 0x8000) << 16, (h >> 10) & 0x1F, h & 0x3FF
    subnormal = _u32(m.astype(np.float32) * np.float32(2.0**-24))
    return _f32(s | np.where(e == 0, subnormal, np.where(e == 31, 0x7F800000, (e + 112) << 23) | (m << 13)))
