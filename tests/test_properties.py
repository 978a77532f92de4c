"""Property tests (hypothesis): random sizes, dtypes, configurations, step counts and gradient
scales against the reference; invariants of SGD, clipping and flat buffers."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastopt
from fastopt import reference
from tests.conftest import CONFIGS, require_backend, tolerance

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])
#: gradient scales per step; float32 stays clear of overflow in g * g (3.4e38)
SCALES = {np.float64: [0.0, 1e-30, 1e-8, 1e-3, 1.0, 1e3, 1e8, 1e30],
          np.float32: [0.0, 1e-15, 1e-6, 1e-3, 1.0, 1e3, 1e6, 1e15]}


@pytest.fixture(autouse=True)
def _numba():
    require_backend("numba")


def unit(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


#: hyperparameter ranges of the later families' rules, by class name (key -> strategy)
EXTRA_RANGES = {}
# torch family (Keras's Nadam has neither momentum_decay nor decoupled_weight_decay)
_BETAS = st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999))
EXTRA_RANGES.update({"NAdam:keras": dict(betas=_BETAS)})
EXTRA_RANGES.update(
    Adadelta=dict(rho=unit(0.0, 1.0)), Adamax=dict(betas=_BETAS),
    NAdam=dict(betas=_BETAS, momentum_decay=unit(0.0, 0.1), decoupled_weight_decay=st.booleans()),
    RAdam=dict(betas=_BETAS, decoupled_weight_decay=st.booleans()),
    Rprop=dict(etas=st.tuples(unit(0.05, 0.95), unit(1.05, 3.0)),
               step_sizes=st.tuples(unit(0.0, 1e-3), unit(1e-3, 10.0))),
    ASGD=dict(lambd=unit(0.0, 0.1), alpha=unit(0.0, 1.5), t0=unit(0.0, 10.0)))
# keras conventions: convention="keras" of the foundation's rules takes Keras's options only (no dampening, lr_decay)
EXTRA_RANGES.update({
    "SGD:keras": dict(momentum=unit(0.0, 1.0), nesterov=st.booleans()),
    "Adam:keras": dict(betas=st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999)), amsgrad=st.booleans()),
    "AdamW:keras": dict(betas=st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999)), amsgrad=st.booleans()),
    "RMSprop:keras": dict(alpha=unit(0.0, 0.999), momentum=unit(0.0, 0.95), centered=st.booleans()),
    "Adagrad:keras": dict(initial_accumulator_value=unit(0.0, 1.0))})
# keras / optax family (Ftrl divides by lr: lr > 0)
_B2 = st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999))
_EPS_ROOT = st.one_of(st.just(0.0), unit(1e-12, 1e-3))
_WARMUP = dict(warmup_steps=st.integers(0, 10), weight_lr_power=unit(0.0, 4.0))
EXTRA_RANGES.update(
    Ftrl=dict(lr=unit(1e-4, 0.3), learning_rate_power=unit(-1.0, 0.0), initial_accumulator_value=unit(0.0, 1.0),
              l1=unit(0.0, 0.1), l2=unit(0.0, 0.1), l2_shrinkage=unit(0.0, 0.1), beta=unit(0.0, 1.0)),
    Lion=dict(betas=st.tuples(unit(1e-3, 1.0), unit(0.0, 1.0))),
    Yogi=dict(betas=_B2, eps_root=_EPS_ROOT, initial_accumulator_value=unit(0.0, 1.0)),
    AdaBelief=dict(betas=_B2, eps_root=_EPS_ROOT, nesterov=st.booleans()),
    Adan=dict(betas=st.tuples(unit(0.0, 0.999), unit(0.0, 0.999), unit(0.0, 0.9999)), eps_root=_EPS_ROOT),
    ScheduleFreeAdamW=dict(betas=_B2, **_WARMUP), ScheduleFreeSGD=dict(b1=unit(0.0, 0.999), **_WARMUP))
# per-array family (Adafactor's eps is a pair; torch requires d >= 1, Keras's clip_threshold > 0)
_ADAFACTOR = dict(beta2_decay=unit(-1.0, 0.0), eps=st.tuples(st.one_of(st.none(), unit(1e-30, 1e-3)), unit(0.0, 0.1)))
EXTRA_RANGES.update({
    "Lamb": dict(betas=st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999))),
    "LARS": dict(trust_coefficient=unit(0.0, 0.1), momentum=unit(0.0, 0.99), nesterov=st.booleans()),
    "Adafactor": dict(_ADAFACTOR, d=unit(1.0, 4.0)),
    "Adafactor:keras": dict(_ADAFACTOR, d=unit(0.1, 4.0), relative_step=st.booleans())})


@st.composite
def configs(draw):
    """A configuration of CONFIGS with some hyperparameters redrawn in their valid ranges."""
    name, base = draw(st.sampled_from(CONFIGS))
    hyper = dict(base)
    # weight_decay is 0 or at least 1e-6: the kernels test "l2 != 0" on the value cast to the
    # array dtype, the reference (and torch) in double; they differ only for a decay below
    # float32's smallest subnormal applied to a non-finite parameter (0 * inf)
    ranges = dict(lr=unit(0.0, 0.3), weight_decay=st.one_of(st.just(0.0), unit(1e-6, 0.2)), maximize=st.booleans(),
                  eps=st.one_of(st.just(0.0), unit(1e-12, 1e-3)))
    # a source's convention of a foundation rule ("SGD:keras") draws the ranges of its own key
    rule = name if hyper.get("convention", "torch") == "torch" else f"{name}:{hyper['convention']}"
    if rule == "SGD":
        ranges.update(momentum=unit(0.0, 0.99), dampening=unit(0.0, 1.0), nesterov=st.booleans())
        ranges.pop("eps")
    elif rule in ("Adam", "AdamW"):
        ranges.update(betas=st.tuples(unit(0.0, 0.999), unit(0.0, 0.9999)), amsgrad=st.booleans())
    elif rule == "RMSprop":
        ranges.update(alpha=unit(0.0, 0.999), momentum=unit(0.0, 0.95), centered=st.booleans())
    elif rule == "Adagrad":
        ranges.update(lr_decay=unit(0.0, 0.5), initial_accumulator_value=unit(0.0, 1.0))
    else:  # a later family or convention: only the hyperparameters every rule shares, where its class has them
        accepted = inspect.signature(getattr(fastopt, name)).parameters
        ranges = {k: v for k, v in ranges.items() if k in accepted}
        ranges.update(EXTRA_RANGES.get(rule, EXTRA_RANGES.get(name, {})))
    for key, strategy in ranges.items():
        if draw(st.booleans()):
            hyper[key] = draw(strategy)
    if hyper.get("nesterov") and rule == "SGD":  # torch: Nesterov needs a momentum and zero dampening
        hyper["dampening"] = 0.0
        hyper["momentum"] = max(hyper.get("momentum", 0.0), 0.1)
    return name, hyper


def grads_for(rng, sizes, dtype, scale):
    return [(rng.standard_normal(n) * scale).astype(dtype) for n in sizes]


@SETTINGS
@given(cfg=configs(), dtype=DTYPES, sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=3),
       steps=st.integers(1, 8), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_matches_reference(cfg, dtype, sizes, steps, data, seed):
    name, hyper = cfg
    scales = data.draw(st.lists(st.sampled_from(SCALES[dtype]), min_size=steps, max_size=steps), label="scales")
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ref_params = [p.copy() for p in params]
    opt = getattr(fastopt, name)(params, backend="numba", **hyper)
    ref = reference.Reference(name, ref_params, **hyper)
    with np.errstate(all="ignore"):  # overflow and 0/0 (eps = 0) are part of the test
        for scale in scales:
            grads = grads_for(rng, sizes, dtype, scale)
            opt.step(grads)
            ref.step(grads)
    for p, r in zip(params, ref_params):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, r, **tolerance(dtype), equal_nan=True)
    for mine, theirs in zip(opt.state, ref.state):
        for key, value in theirs.items():
            if key == "step":
                assert mine["step"] == value
            elif value is not None:
                np.testing.assert_allclose(mine[key], value, **tolerance(dtype), equal_nan=True, err_msg=key)


@SETTINGS
@given(dtype=DTYPES, size=st.integers(0, 3000), steps=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       lr=unit(0.0, 10.0), momentum=unit(0.0, 0.99), dampening=unit(0.0, 1.0), nesterov=st.booleans(),
       maximize=st.booleans(), backend=st.sampled_from(["numba", "cython", "python"]))
def test_zero_gradient_leaves_sgd_params_unchanged(dtype, size, steps, seed, lr, momentum, dampening, nesterov,
                                                   maximize, backend):
    if backend not in fastopt.available_backends():
        backend = "numba"
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    if backend == "python":
        size = min(size, 200)
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(size).astype(dtype)
    p[: size // 7] *= 1e30 if dtype == np.float64 else 1e15
    p[size // 7: size // 5] = -0.0
    before = p.copy()
    opt = fastopt.SGD(p, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, maximize=maximize,
                      backend=backend)
    g = np.zeros(size, dtype)
    for _ in range(steps):
        opt.step(g)
    # unchanged, bit for bit; only a zero may change sign (-0 - lr * (-0) is +0, in torch too)
    np.testing.assert_array_equal(p, before)
    nz = before != 0
    assert p[nz].tobytes() == before[nz].tobytes()


@st.composite
def grad_lists(draw, min_size=1):
    dtype = draw(DTYPES)
    sizes = draw(st.lists(st.integers(0, 3000), min_size=min_size, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(SCALES[dtype]))
    grads = grads_for(rng, sizes, dtype, scale)
    if grads and draw(st.booleans()):  # mixed magnitudes inside one array
        grads[0] = (grads[0] * 10.0 ** rng.uniform(-3, 3, grads[0].size)).astype(dtype)
    return grads


def _norm64(grads, p):
    x = np.concatenate([g.astype(np.float64).ravel() for g in grads]) if grads else np.zeros(0)
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x))) if p == math.inf else float(np.sum(np.abs(x) ** p) ** (1.0 / p))


@SETTINGS
@given(grads=grad_lists(), max_norm=st.one_of(st.just(0.0), unit(1e-3, 1e3)),
       norm_type=st.sampled_from([2.0, 1.0, 3.0, 0.5, math.inf]), backend=st.sampled_from(["numba", "cython"]))
def test_clip_grad_norm_never_increases_the_norm(grads, max_norm, norm_type, backend):
    if backend not in fastopt.available_backends():
        backend = "numba"
    before = [g.copy() for g in grads]
    norm_before = float(fastopt.global_norm(grads, norm_type, backend=backend))
    assume(math.isfinite(norm_before))
    total = fastopt.clip_grad_norm_(grads, max_norm, norm_type=norm_type, backend=backend)
    assert total == norm_before
    norm_after = float(fastopt.global_norm(grads, norm_type, backend=backend))
    assert norm_after <= norm_before
    assert norm_after <= max_norm * (1 + 1e-6)
    for g, b in zip(grads, before):  # every element shrinks by the same factor, signs kept
        assert np.all(np.abs(g) <= np.abs(b))
        assert np.all((np.sign(g) == np.sign(b)) | (g == 0))
    # the float64 norm agrees with a plain NumPy one
    if norm_type != 0.5:  # |x|**0.5 summed over ~1e4 elements: too ill-conditioned for a tight rtol
        assert math.isclose(norm_before, _norm64(before, norm_type), rel_tol=1e-9, abs_tol=1e-300)


@SETTINGS
@given(grads=grad_lists(), clip_value=unit(0.0, 1e3), backend=st.sampled_from(["numba", "cython"]))
def test_clip_grad_value_clamps(grads, clip_value, backend):
    if backend not in fastopt.available_backends():
        backend = "numba"
    expected = [np.clip(g, -clip_value, clip_value) for g in grads]
    fastopt.clip_grad_value_(grads, clip_value, backend=backend)
    for g, e in zip(grads, expected):
        np.testing.assert_array_equal(g, e)


SHAPES = st.lists(st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple), min_size=0, max_size=6)


@SETTINGS
@given(shapes=SHAPES, dtypes=st.lists(st.sampled_from([np.float32, np.float64, np.int32, np.int64]),
                                      min_size=6, max_size=6),
       out_dtype=st.sampled_from([None, np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_flatten_round_trips(shapes, dtypes, out_dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) * 100).astype(d) for s, d in zip(shapes, dtypes)]
    flat, views = fastopt.flatten(arrays, dtype=out_dtype)
    expected_dtype = np.dtype(out_dtype) if out_dtype is not None else (
        np.result_type(*arrays) if arrays else np.dtype(np.float32))
    assert flat.dtype == expected_dtype and flat.ndim == 1 and flat.flags.c_contiguous
    assert flat.size == sum(a.size for a in arrays)
    assert len(views) == len(arrays)
    for a, v in zip(arrays, views):
        assert v.shape == a.shape and v.dtype == flat.dtype
        np.testing.assert_array_equal(v, a.astype(flat.dtype))
        if v.size:
            assert np.shares_memory(v, flat)
    if arrays:
        np.testing.assert_array_equal(flat, np.concatenate([a.astype(flat.dtype).ravel() for a in arrays]))
    # writing through a view writes the buffer, and nothing else
    if flat.size:
        k = next(i for i, v in enumerate(views) if v.size)
        views[k].reshape(-1)[0] = 7
        assert np.count_nonzero(flat == 7) >= 1
        others = [v for i, v in enumerate(views) if i != k]
        for a, v in zip([a for i, a in enumerate(arrays) if i != k], others):
            np.testing.assert_array_equal(v, a.astype(flat.dtype))


@SETTINGS
@given(cfg=configs(), dtype=DTYPES, shapes=st.lists(st.lists(st.integers(0, 40), max_size=2).map(tuple),
                                                    min_size=1, max_size=5),
       steps=st.integers(1, 8), flat_params=st.booleans(), seed=st.integers(0, 2**32 - 1),
       clip=st.sampled_from([{}, {"clipvalue": 0.5}, {"clipnorm": 1.0}]))
def test_flat_grads_step_like_separate_arrays(cfg, dtype, shapes, steps, flat_params, seed, clip):
    """Grads written into the views of one flatten() buffer (and, optionally, params that are
    views of another) give the same bits as separate arrays."""
    name, hyper = cfg
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(rng.standard_normal(s), dtype) for s in shapes]  # 0-d too
    separate = [a.copy() for a in arrays]
    params = fastopt.flatten(arrays)[1] if flat_params else [a.copy() for a in arrays]
    gflat, gviews = fastopt.flatten([np.zeros(s, dtype) for s in shapes])
    opt = getattr(fastopt, name)(params, backend="numba", **hyper, **clip)
    opt_sep = getattr(fastopt, name)(separate, backend="numba", **hyper, **clip)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            grads = [np.asarray(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 3), dtype) for s in shapes]
            gflat[...] = np.concatenate([g.ravel() for g in grads]) if grads else gflat
            opt.step(gviews)
            opt_sep.step(grads)
    for p, s in zip(params, separate):
        assert same_bits(p, s)
    for a, b in zip(opt.state, opt_sep.state):
        for k in b:
            if isinstance(b[k], np.ndarray):
                assert same_bits(a[k], b[k]), k


def same_bits(a, b):
    """Bit-identical, except that every NaN equals every NaN: a NaN's sign and payload depend on
    whether a vector or a scalar instruction produced it (0/0 in the loop's tail), not on the rule."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    return np.where(np.isnan(a), 0, a).tobytes() == np.where(np.isnan(b), 0, b).tobytes()
