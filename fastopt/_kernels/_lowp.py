"""Low-precision storage as plain Python: the bit conversions between float32 and bfloat16 or
float16 (nearest even and stochastic rounding) and the counter-based random bits behind the
stochastic rounding. DESIGN.md section 6; the definitions, exactly:

``u`` is a float32's bit pattern as an unsigned 32-bit integer, ``a = u & 0x7FFFFFFF`` its
magnitude, ``s`` its sign bit moved to bit 15; all integer arithmetic is modulo 2**32, and every
bfloat16/float16 value is its 16 bits (``uint16``). Float64 sources round to float32 (nearest
even) first, as a C float argument converts (torch and ml_dtypes convert doubles the same way).

- ``bf16_to_f32(h)``: the float32 of bits ``h << 16`` (exact).
- ``f32_to_bf16(x)``: ``(u + 0x7FFF + ((u >> 16) & 1)) >> 16``: nearest, ties to even; past the
  largest finite bfloat16 (``0x7F7F``) the carry gives infinity. A NaN (``a > 0x7F800000``) gives
  the quiet NaN ``s | 0x7FC0`` (ml_dtypes' bits; torch writes ``0xFFFF`` for every NaN).
- ``f32_to_bf16_stochastic(x, r)``: ``(u + (r & 0xFFFF)) >> 16``: the magnitude rounds up with
  probability (dropped 16 bits) / 2**16, exactly the dropped fraction of an ulp, so the mean is
  ``x`` in every range (subnormals included; past the largest finite value it rounds to infinity
  with that probability); infinity stays infinite, a NaN gives ``s | 0x7FC0``.
- ``f16_to_f32(h)``: exact: exponent 0 gives ``m * 2**-24`` (subnormals), 31 gives inf/NaN with
  the payload ``m << 13``, else ``(e + 112) << 23 | m << 13`` (NumPy's ``astype(float32)``).
- ``f32_to_f16(x)`` (NumPy's ``astype(float16)`` on float32, bit for bit): a NaN gives
  ``s | 0x7C00 | m`` with ``m = (a >> 13) & 0x3FF``, or ``m = 1`` if that is 0 (payload kept, a
  NaN stays a NaN); below ``2**-14`` (``a < 0x38800000``, float16 subnormals) the float32 sum
  ``|x| + 0.5`` rounds at the subnormal spacing ``2**-24``: its bits minus ``0x3F000000``; above,
  ``t = min(a, 0x47800000) - 0x38000000`` (the float16 bits with 13 more fraction bits) rounds as
  ``(t + 0xFFF + ((t >> 13) & 1)) >> 13``: from 65520 on that is infinity (``0x7C00``).
- ``f32_to_f16_stochastic(x, r)``: ``(t + (r & 0x1FFF)) >> 13``, with ``t`` as above in the
  normal range (so from 65504 up to 65536 it rounds to infinity with the dropped fraction, and
  from 65536 on it is infinity); in the subnormal range ``t`` is the bits of the float32 sum
  ``|x| + 2**-14`` minus ``0x38800000``, the value in units of ``2**-37`` rounded to nearest even
  (13 fraction bits below the subnormal spacing, as in the normal range: the probability is the
  dropped fraction to within ``2**-14`` ulp). NaN as ``f32_to_f16``.
- ``hash32(x)``: Chris Wellons' lowbias32: ``x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15;
  x *= 0x846CA68B; x ^= x >> 16`` (a bijection of 32-bit words with low bias; 32-bit multiplies).
- ``random_bits(key, index)``: ``hash32(key ^ lo ^ hi * 0x9E3779B9)`` where ``lo`` and ``hi`` are
  the low and high 32 bits of the element index (``index >= 0``).
- ``step_key(seed, step)``: ``h = 0x2545F491``, then ``h = hash32(h ^ w)`` for each word ``w`` of
  ``seed & M, seed >> 32, step & M, step >> 32`` (``M = 2**32 - 1``; ``0 <= seed, step < 2**64``).
  Computed in Python once per step; the kernels take the key as a scalar.

The kernels call these by name. Under Cython they cimport the typed twins in ``_lowp.pxd`` (the
C types: ``float`` values, ``unsigned short`` bits, ``unsigned int`` random bits and keys,
``Py_ssize_t`` indices). Plain Python runs them on Python ints (exact; ``u32`` keeps 32 bits).
The Numba backend jits them in one namespace (``NumbaBackend._helper_namespace``) with
``f32_bits``, ``bits_f32``, ``u32``, ``mul32`` and ``xorshr32`` as LLVM intrinsics: Numba widens
integer arithmetic to 64 bits; ``u32`` after each add lets LLVM narrow it back to 32-bit vector
lanes, and the hash is written in 32-bit operations only (``mul32``, ``xorshr32``), which LLVM
otherwise re-widens: on AVX2 (no 64-bit vector multiply) it then ran in 64-bit lanes with an
emulated 64-bit multiply, 2x slower. They carry no annotations, so Numba compiles them with the
kernel that calls them (nothing at start-up when that kernel is cached): each converts its
arguments itself (``f32_bits``, ``u32``) as the C signature would.
"""
from __future__ import annotations

import numpy as np

#: the storage formats (``fmt``) and the modes (``mode``) of the conversion kernel ``convert_``
BF16, F16 = 0, 1
DECODE, NEAREST, STOCHASTIC = 0, 1, 2
M32 = 0xFFFFFFFF


def f32_bits(x):
    """The bit pattern of ``x`` as a float32 (a double rounds to nearest first)."""
    return int(np.float32(x).view(np.uint32))


def bits_f32(u):
    """The float32 whose bit pattern is ``u`` (its low 32 bits)."""
    return np.uint32(int(u) & M32).view(np.float32)


def u32(v):
    """``v`` modulo 2**32 (Numba: a truncation to 32 bits, so that its integer arithmetic, which
    widens to 64 bits, narrows back to 32-bit vector lanes; Cython's is unsigned int anyway)."""
    return int(v) & M32


def mul32(a, b):
    """``a * b`` modulo 2**32."""
    return (int(a) * int(b)) & M32


def xorshr32(x, k):
    """``x ^ (x >> k)`` of the 32-bit word ``x``."""
    x = int(x) & M32
    return x ^ (x >> k)


def bf16_to_f32(h):
    return bits_f32(u32(h) << 16)


def _bf16(u, bias):
    """``u`` rounded to bfloat16 by adding ``bias`` and truncating; a NaN gives the quiet NaN."""
    if u32(u & 0x7FFFFFFF) > 0x7F800000:
        return u32(((u >> 16) & 0x8000) | 0x7FC0)
    return u32(u + bias) >> 16  # truncated before the shift: a 32-bit add (no carry out for a non-NaN)


def f32_to_bf16(x):
    u = f32_bits(x)
    return _bf16(u, u32(0x7FFF + ((u >> 16) & 1)))


def f32_to_bf16_stochastic(x, r):
    return _bf16(f32_bits(x), u32(r & 0xFFFF))


def f16_to_f32(h):
    h = u32(h)
    s = u32((h & 0x8000) << 16)
    e = u32((h >> 10) & 0x1F)
    m = u32(h & 0x3FF)
    if e == 0:  # 2**-14 + m * 2**-24, less 2**-14: exact
        return bits_f32(s | f32_bits(bits_f32(0x38800000 | (m << 13)) - bits_f32(0x38800000)))
    if e == 31:
        return bits_f32(s | 0x7F800000 | (m << 13))
    return bits_f32(s | ((e + 112) << 23) | (m << 13))


def _f16_nan(a):
    """The float16 NaN of a float32 NaN's magnitude ``a`` (NumPy's: the top payload bits, at least 1)."""
    m = u32((a >> 13) & 0x3FF)
    if m == 0:
        m = u32(1)
    return u32(0x7C00 | m)


def f32_to_f16(x):
    u = f32_bits(x)
    a = u32(u & 0x7FFFFFFF)
    if a > 0x7F800000:
        h = _f16_nan(a)
    elif a < 0x38800000:  # |x| + 0.5 in float32 rounds at 2**-24, the subnormal spacing
        h = u32(f32_bits(bits_f32(a) + bits_f32(0x3F000000)) - 0x3F000000)
    else:
        t = u32(min(a, 0x47800000) - 0x38000000)
        h = u32(u32(t + 0xFFF + ((t >> 13) & 1)) >> 13)
    return u32(((u >> 16) & 0x8000) | h)


def f32_to_f16_stochastic(x, r):
    u = f32_bits(x)
    a = u32(u & 0x7FFFFFFF)
    if a > 0x7F800000:
        return u32(((u >> 16) & 0x8000) | _f16_nan(a))
    if a < 0x38800000:  # |x| + 2**-14 in float32: |x| in units of 2**-37
        t = u32(f32_bits(bits_f32(a) + bits_f32(0x38800000)) - 0x38800000)
    else:
        t = u32(min(a, 0x47800000) - 0x38000000)
    return u32(((u >> 16) & 0x8000) | (u32(t + (r & 0x1FFF)) >> 13))


def hash32(x):
    x = mul32(xorshr32(x, 16), 0x7FEB352D)
    x = mul32(xorshr32(x, 15), 0x846CA68B)
    return xorshr32(x, 16)


def random_bits(key, index):
    return hash32(u32(key) ^ u32(index) ^ mul32(index >> 32, 0x9E3779B9))


def step_key(seed, step):
    """The key of step ``step`` of the stream ``seed`` (Python only: once per step)."""
    seed, step = int(seed), int(step)
    if not (0 <= seed < 2**64 and 0 <= step < 2**64):
        raise ValueError(f"seed and step must be integers in [0, 2**64), got seed={seed}, step={step}")
    h = 0x2545F491
    for word in (seed & M32, seed >> 32, step & M32, step >> 32):
        h = hash32(h ^ word)
    return h
