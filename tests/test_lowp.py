"""Low-precision storage (issue 16's foundations): the bfloat16/float16 conversions and the random
bits of stochastic rounding (fastopt/_kernels/_lowp.py, the kernels of fastopt/_kernels/convert.py)
equal their NumPy reference (fastopt/reference/storage.py) bit for bit on every backend, thread
count and chunking; the reference equals ml_dtypes, torch and NumPy on every float32 class; the
stochastic rounding is unbiased."""
from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastopt import _backends
from fastopt._kernels import _lowp
from fastopt.reference import storage as S
from tests.conftest import BACKENDS, kernel_threads, require_backend

BF16, F16 = _lowp.BF16, _lowp.F16
SEED, STEP = 2024, 7
BASE = 2**32 - 100_000  # the element indices of a call cross 2**32: both halves of the index count
#: float32 low halves with every bfloat16 and float16 rounding case: exact, just below, at and just
#: above a tie (ties to even and to odd), all ones; NaNs whose payload is only in the low half
LOW_HALVES = (0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2FFF, 0x3000, 0x3001, 0x7FFF, 0x8000, 0x8001, 0x2000,
              0xFFFF)
COMPILED = [b for b in BACKENDS if b != "python"]
#: the python backend's sizes (~4 us an element: 200_000 elements would take 20 s a case; the
#: compiled backends run the same source at every size)
PYTHON_SIZES = (0, 1, 17, 65537)


def bit_patterns(rng):
    """Float32 bit patterns of every class: each of the 2**16 high halves (zeros, subnormals,
    normals, max finite, infinities, NaNs) with each of ``LOW_HALVES`` and 4 random low halves."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = np.concatenate([np.array(LOW_HALVES, np.uint32)[None, :].repeat(high.size, 0),
                          rng.integers(0, 1 << 16, (high.size, 4)).astype(np.uint32)], axis=1)
    return (high[:, None] | low).ravel()


def source(rng, n, dtype):
    """``n`` values of ``dtype`` for the conversions: float32 bit patterns of every class, and for
    float64 also doubles between float32 values and beyond float32's range."""
    x = rng.choice(bit_patterns(rng), n).view(np.float32)
    if dtype == np.float32:
        return x
    with np.errstate(invalid="ignore"):
        x = x.astype(np.float64)
    wide = rng.standard_normal(n) * 10.0 ** rng.uniform(-50, 42, n)
    return np.where(rng.random(n) < 0.5, x, wide)


def convert(name, x, h, fmt, mode, threads, key=0, base=0):
    """Backend ``name``'s conversion kernel as built (no serial/parallel choice), in ``threads`` chunks."""
    with kernel_threads(threads):
        _backends.backend(name)._build("convert_", x.dtype, threads > 1)(x, h, fmt, mode, key, base, threads)


def to_lowp(name, x, fmt, stochastic, threads=1, base=BASE):
    h = np.empty(x.size, np.uint16)
    convert(name, x, h, fmt, _lowp.STOCHASTIC if stochastic else _lowp.NEAREST, threads,
            _lowp.step_key(SEED, STEP), base)
    return h


def from_lowp(name, h, fmt, dtype, threads=1):
    x = np.empty(h.size, dtype)
    convert(name, x, h, fmt, _lowp.DECODE, threads)
    return x


def reference_bits(x, fmt, stochastic, base=BASE):
    if stochastic:
        return (S.to_bf16_stochastic if fmt == BF16 else S.to_f16_stochastic)(x, SEED, STEP, base).view(np.uint16)
    return (S.to_bf16_nearest if fmt == BF16 else S.to_f16_nearest)(x).view(np.uint16)


def same_bits(a, b):
    np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


CONVERSIONS = [(BF16, False), (BF16, True), (F16, False), (F16, True)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [0, 1, 17, 65537, 200_000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BACKENDS)
def test_kernels_equal_the_reference_bit_for_bit(name, dtype, n, threads):
    require_backend(name)
    if name == "python" and n not in PYTHON_SIZES:
        pytest.skip("the python backend runs the sizes up to 65537 only")
    rng = np.random.default_rng(n)
    x = source(rng, n, dtype)
    for fmt, stochastic in CONVERSIONS:
        np.testing.assert_array_equal(to_lowp(name, x, fmt, stochastic, threads), reference_bits(x, fmt, stochastic))
    h = (rng.permutation(1 << 16)[np.arange(n) % (1 << 16)]).astype(np.uint16)
    for fmt, ref in ((BF16, S.from_bf16(h)), (F16, S.from_f16(h))):
        with np.errstate(invalid="ignore"):  # float64 out: the float32 value converted as the hardware does
            same_bits(from_lowp(name, h, fmt, dtype, threads), ref.astype(dtype))


@pytest.mark.parametrize("name", BACKENDS)
def test_the_same_index_gets_the_same_bits_whatever_the_chunking(name):
    """Element i of a call has index base + i: a buffer converted in pieces (each with its base)
    or in any number of chunks gets the bits of the whole at once; every backend the same."""
    require_backend(name)
    n = 4099 if name == "python" else 200_003
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 4, n)).astype(np.float32)  # in both formats' range
    for fmt in (BF16, F16):
        whole = to_lowp("numba" if "numba" in _backends.available_backends() else name, x, fmt, True)
        for threads in (1, 2, 3, 7):
            np.testing.assert_array_equal(to_lowp(name, x, fmt, True, threads), whole)
        cuts = [0, 1, 17, n // 3, n // 2 + 5, n]
        pieces = [to_lowp(name, x[a:b], fmt, True, base=BASE + a) for a, b in itertools.pairwise(cuts)]
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
        assert (to_lowp(name, x, fmt, True, base=BASE + 1) != whole).mean() > 0.2  # other indices, other bits


@pytest.mark.parametrize("name", COMPILED)
def test_nearest_bf16_equals_ml_dtypes_and_torch_on_every_float32_class(name):
    """Zeros, subnormals, normals, ties, max finite and the overflow past it, infinities, NaNs
    (payloads only in the low bits too). NaN bits: ml_dtypes' quiet NaN with the sign kept
    (``s | 0x7FC0``) exactly; torch's ``Tensor.bfloat16()`` writes 0xFFFF for every NaN."""
    require_backend(name)
    u = bit_patterns(np.random.default_rng(0))
    x = u.view(np.float32)
    mine = to_lowp(name, x, BF16, False)
    np.testing.assert_array_equal(mine, reference_bits(x, BF16, False))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(mine, x.astype(ml_dtypes.bfloat16).view(np.uint16))
    torch = pytest.importorskip("torch")
    theirs = torch.from_numpy(x.copy()).bfloat16().view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(mine[~nan], theirs[~nan])
    assert np.isnan(S.from_bf16(theirs[nan])).all() and np.isnan(S.from_bf16(mine[nan])).all()
    assert (np.signbit(S.from_bf16(mine[nan])) == np.signbit(x[nan])).all()
    # every low half of a NaN, the ones that truncate to the infinity's bits included, stays NaN
    assert nan.sum() > 2 * len(LOW_HALVES) and ((u[nan] & 0xFFFF0000) == 0x7F800000).any()


@pytest.mark.parametrize("name", COMPILED)
def test_float16_equals_numpy_on_every_float32_class(name):
    """Nearest even to float16 is NumPy's ``astype(float16)`` bit for bit (NaN payloads too), and
    back from every float16 and bfloat16 bit pattern NumPy's and ml_dtypes' float32 values."""
    require_backend(name)
    x = bit_patterns(np.random.default_rng(1)).view(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(to_lowp(name, x, F16, False), expected)
    np.testing.assert_array_equal(reference_bits(x, F16, False), expected)
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    for ref in (S.from_f16(h), from_lowp(name, h, F16, np.float32)):
        same_bits(ref, h.view(np.float16).astype(np.float32))
    for ref in (S.from_bf16(h), from_lowp(name, h, BF16, np.float32)):
        same_bits(ref, h.view(ml_dtypes.bfloat16).astype(np.float32))


def _unbiased_values(rng):
    """Positive and negative values across the ranges (each with random low bits): bfloat16
    normals of every magnitude, bfloat16 subnormals (float32 subnormals), float16 normals and
    subnormals; values a format holds exactly (which must not move)."""
    def at(exponents):
        return (2.0 ** np.asarray(exponents, np.float64) * rng.uniform(1, 2, len(exponents))).astype(np.float32)
    bf16 = np.concatenate([at([-120, -60, -20, -3, 0, 1, 10, 40, 100, 126]),
                           np.array([3e-39, 1e-40, 7e-42, 2e-44], np.float32),  # float32 (and bfloat16) subnormals
                           np.array([1.5, 2.0**-133], np.float32)])  # exact in bfloat16
    f16 = np.concatenate([at([-14, -8, 0, 5, 12, 14]), at([-15, -18, -22, -24, -26]),  # float16 subnormals below 2**-14
                          np.array([1.5, 3 * 2.0**-24, 65504.0], np.float32)])  # exact in float16
    signs = lambda v: np.concatenate([v, -v[::3]])  # noqa: E731
    return [(BF16, v) for v in signs(bf16)] + [(F16, v) for v in signs(f16)]


@pytest.mark.parametrize("name", COMPILED)
def test_stochastic_rounding_is_unbiased(name):
    """The mean of SR(x) over 10**6 draws (10**6 element indices) equals x within 4 standard
    errors of that mean; a value the format holds exactly is never moved."""
    require_backend(name)
    draws = 10**6
    for fmt, value in _unbiased_values(np.random.default_rng(3)):
        x = np.full(draws, value, np.float32)
        y = from_lowp(name, to_lowp(name, x, fmt, True, threads=2), fmt, np.float64, threads=2)
        lo, hi = np.unique(y)[[0, -1]]
        if lo == hi:
            assert lo == value, (fmt, value)
            continue
        assert len(np.unique(y)) == 2 and lo < value < hi, (fmt, value, np.unique(y))
        p = (float(value) - lo) / (hi - lo)  # the probability of rounding to hi
        se = (hi - lo) * np.sqrt(p * (1 - p) / draws)
        assert abs(y.mean() - float(value)) <= 4 * se, (fmt, value, (y.mean() - value) / se)


def test_stochastic_rounding_saturates_as_documented():
    """Past the largest finite value stochastic rounding reaches infinity with the dropped
    fraction (bfloat16 up to 2**128, float16 from 65504 up to 65536; float16 is inf from 65536
    on); infinities stay infinite; NaNs (payloads in the low bits only included) stay NaN."""
    x = np.array([3.3961e38, 65519.0, 65535.0, 65536.0, 1e30, np.inf, -np.inf], np.float32)
    nan = np.array([0x7F800001, 0xFF800001, 0x7F80FFFF, 0x7FC00000, 0x7F802000], np.uint32).view(np.float32)
    for fmt, back in ((BF16, S.from_bf16), (F16, S.from_f16)):
        many = np.repeat(x, 4096)
        y = back(reference_bits(many, fmt, True, base=0)).reshape(len(x), -1)
        assert np.isnan(back(reference_bits(np.repeat(nan, 64), fmt, True, base=0))).all()
        assert np.isinf(y[-2:]).all() and (np.sign(y[-2:]) == np.sign(x[-2:, None])).all()
        near = y[0] if fmt == BF16 else y[1:3].ravel()
        assert np.isinf(near).any() and np.isfinite(near).any()
        if fmt == F16:
            assert np.isinf(y[3:5]).all()


def test_random_bits_mix_key_index_and_both_index_halves():
    """Every output bit flips about half the time when any bit of the key or of the index flips
    (avalanche), each output bit is 1 about half the time along the indices and along the steps
    of one element, and the Python helper equals the reference."""
    rng = np.random.default_rng(4)
    index = rng.integers(0, 2**40, 4096, dtype=np.uint64)
    key = np.uint32(_lowp.step_key(SEED, STEP))
    base = S.random_bits(key, index)
    bits = lambda v: (v[:, None] >> np.arange(32, dtype=np.uint32)) & 1  # noqa: E731
    for flip in range(32 + 40):  # each bit of the key, each bit of the index up to 2**40
        other = (S.random_bits(key ^ np.uint32(1 << flip), index) if flip < 32
                 else S.random_bits(key, index ^ np.uint64(1 << (flip - 32))))
        rate = bits(base ^ other).mean(axis=0)
        assert (abs(rate - 0.5) < 0.06).all(), (flip, rate)
    assert (abs(bits(S.random_bits(key, np.arange(1 << 16, dtype=np.uint64))).mean(axis=0) - 0.5) < 0.01).all()
    keys = np.array([_lowp.step_key(SEED, s) for s in range(1, 4097)], np.uint32)
    along_steps = np.array([S.random_bits(k, np.array([BASE], np.uint64))[0] for k in keys], np.uint32)
    assert (abs(bits(along_steps).mean(axis=0) - 0.5) < 0.06).all()
    for i in list(index[:64]) + [0, 2**32 - 1, 2**32, 2**63 - 1]:
        assert _lowp.random_bits(key, int(i)) == S.random_bits(key, np.array([i], np.uint64))[0]


def test_step_keys_are_distinct_per_step_and_equal_the_reference():
    """For one seed, distinct steps below 2**32 give distinct keys (each word goes through a
    bijection of the running hash); a bad seed or step is refused."""
    keys = [_lowp.step_key(SEED, s) for s in range(20_000)]
    assert len(set(keys)) == len(keys) and all(0 <= k < 2**32 for k in keys)
    for seed, step in ((0, 0), (SEED, STEP), (2**64 - 1, 2**64 - 1), (1, 2**32 + 5)):
        assert _lowp.step_key(seed, step) == S.step_key(seed, step)
    assert _lowp.step_key(1, 2) != _lowp.step_key(2, 1)
    for seed, step in ((-1, 0), (0, 2**64)):
        with pytest.raises(ValueError, match="seed and step"):
            _lowp.step_key(seed, step)


FLOAT32_BITS = st.integers(0, 2**32 - 1)


@settings(max_examples=400, deadline=None)
@given(u=FLOAT32_BITS, r=st.integers(0, 2**32 - 1))
def test_the_helpers_equal_the_reference_and_round_to_a_neighbour(u, r):
    """The plain-Python helpers (the python backend's) equal the reference on any float32; a
    stochastic result is the value truncated or one ulp up in magnitude, and nearest is one of them."""
    x = np.array([u], np.uint32).view(np.float32)
    with np.errstate(all="ignore"):
        assert _lowp.f32_to_bf16(x[0]) == S.to_bf16_nearest(x).view(np.uint16)[0]
        assert _lowp.f32_to_f16(x[0]) == S.to_f16_nearest(x).view(np.uint16)[0]
        for fmt, helper, back in ((BF16, _lowp.f32_to_bf16_stochastic, S.from_bf16),
                                  (F16, _lowp.f32_to_f16_stochastic, S.from_f16)):
            h = helper(x[0], r)
            if np.isnan(x[0]):
                assert np.isnan(back(np.array([h], np.uint16))[0])
                continue
            stochastic = [helper(x[0], 0), helper(x[0], 0xFFFF if fmt == BF16 else 0x1FFF)]  # the two extremes
            assert stochastic[0] <= h <= stochastic[1] <= stochastic[0] + 1
            nearest = (_lowp.f32_to_bf16 if fmt == BF16 else _lowp.f32_to_f16)(x[0])
            assert nearest in stochastic


@settings(max_examples=300, deadline=None)
@given(h=st.integers(0, 2**16 - 1))
def test_every_16_bit_value_survives_the_round_trip(h):
    """From a bfloat16 or float16 to float32 and back to nearest: the same bits (a float16 NaN
    too; a bfloat16 NaN comes back as the quiet NaN of its sign, as ml_dtypes rounds it)."""
    back = _lowp.f32_to_bf16(_lowp.bf16_to_f32(h))
    assert back == (h if (h & 0x7FFF) <= 0x7F80 else (h & 0x8000) | 0x7FC0)
    assert _lowp.f32_to_f16(_lowp.f16_to_f32(h)) == h
