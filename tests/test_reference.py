"""Pins the NumPy oracle (fastopt.reference) itself: against torch.optim / torch.nn.utils where torch is
installed, and against the Keras 3 clipping formulas written out by hand.

Tolerances, and why:
- float64: rtol=1e-12, atol=1e-14 after 50 steps. The oracle differs from torch's single-tensor code only by
  rounding: ``b*m + (1-b)*g`` where torch uses ``lerp``, ``(-lr*x)/d`` where torch's ``addcdiv`` computes
  ``-lr*(x/d)``, and FMA contractions inside torch's vectorized kernels.
- float32: rtol=1e-5, atol=1e-5 * max|expected| per array. Both sides compute in float32 (eps 1.2e-7), so the
  same few-ulp differences per operation accumulate over 50 steps. Moving averages of gradients spanning six
  decades cancel, so an entry's error is relative to the array's scale, not to its own value: measured worst
  cases are 1.7e-6 of the array maximum (RMSprop grad_avg) while single entries reach 4e-5 relative error.
"""
import inspect
import math

import numpy as np
import pytest

from fastopt import reference as ref

torch = pytest.importorskip("torch")

SHAPES = [(7,), (3, 5), (1,)]
NSTEPS = 50


def assert_close(actual, expected, dtype, err_msg=""):
    """The module-docstring tolerances: elementwise in float64, relative to the array's scale in float32."""
    if dtype is np.float64:
        tol = dict(rtol=1e-12, atol=1e-14)
    else:
        tol = dict(rtol=1e-5, atol=1e-5 * float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, **tol, err_msg=err_msg)

# (torch class name, hyperparameters): defaults first, then every option off its default
CONFIGS = [
    ("SGD", {}),
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.01, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.02, momentum=0.5, maximize=True)),
    ("Adam", {}),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adam", dict(lr=0.005, amsgrad=True)),
    ("Adam", dict(lr=0.005, amsgrad=True, maximize=True, weight_decay=1e-2)),
    ("AdamW", {}),
    ("AdamW", dict(lr=0.01, betas=(0.85, 0.95), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.0, maximize=True)),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=0.001, alpha=0.9, eps=1e-6, weight_decay=1e-2)),
    ("RMSprop", dict(lr=0.001, momentum=0.9)),
    ("RMSprop", dict(lr=0.001, centered=True)),
    ("RMSprop", dict(lr=0.001, centered=True, momentum=0.5, maximize=True, weight_decay=1e-3)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(lr=0.05, initial_accumulator_value=0.1, weight_decay=1e-2, eps=1e-8)),
    ("Adagrad", dict(lr=0.05, maximize=True, lr_decay=1e-3)),
]


def _ids(c):
    return c[0] + "-" + ("-".join(f"{k}={v}" for k, v in c[1].items()) or "defaults")


def _grads(rng, dtype):
    """Gradients spanning six decades, so that bias corrections, eps and weight decay all matter."""
    return [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 3, s)).astype(dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_steps_match_torch(config, dtype):
    name, hyper = config
    rng = np.random.default_rng(1234)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
    topt = getattr(torch.optim, name)(tparams, foreach=False, **hyper)
    states = [{} for _ in params]
    for _ in range(NSTEPS):
        grads = _grads(rng, dtype)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        topt.step()
        for p, g, st in zip(params, grads, states):
            g_before = g.copy()
            ref.STEPS[name](p, g, st, **hyper)
            np.testing.assert_array_equal(g, g_before)  # the oracle never writes the gradient
    for p, tp, st in zip(params, tparams, states):
        assert p.dtype == dtype
        assert_close(p, tp.detach().numpy(), dtype)
        tstate = topt.state[tp]
        # every buffer torch keeps, under torch's name (SGD without momentum keeps none)
        assert {k for k, v in tstate.items() if v is not None} == {k for k, v in st.items() if v is not None}
        for key, tv in tstate.items():
            if key == "step":
                assert st["step"] == int(tv.item()) == NSTEPS
            elif tv is not None:
                assert st[key].dtype == dtype
                assert_close(st[key], tv.numpy(), dtype, err_msg=key)


def test_float32_survives_float64_hyperparameters():
    """NumPy 2 upcasts float32 arrays combined with np.float64 scalars; the oracle must not."""
    for name in ref.STEPS:
        p = np.ones(4, np.float32)
        g = np.full(4, 0.5, np.float32)
        state = {}
        accepted = inspect.signature(ref.STEPS[name]).parameters
        hyper = {k: np.float64(v) for k, v in dict(lr=1e-2, weight_decay=1e-2, momentum=0.9).items()
                 if k in accepted}
        for _ in range(2):
            ref.STEPS[name](p, g, state, **hyper)
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray)), name


def test_empty_and_scalar_shapes():
    for name in ref.STEPS:
        for shape in [(0,), ()]:
            p = np.ones(shape)
            state = {}
            ref.STEPS[name](p, np.ones(shape), state, lr=0.1)
            assert p.shape == shape


def _torch_grads(grads):
    tps = []
    for g in grads:
        tp = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        tp.grad = torch.from_numpy(g.copy())
        tps.append(tp)
    return tps


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf])
@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e9])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    rng = np.random.default_rng(7)
    grads = _grads(rng, dtype)
    tps = _torch_grads(grads)
    total_t = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type, foreach=False)
    total = ref.clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    # torch accumulates float32 norms in float32, the oracle in float64
    rtol = 1e-13 if dtype is np.float64 else 1e-5
    np.testing.assert_allclose(total, total_t.item(), rtol=rtol)
    for g, tp in zip(grads, tps):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=rtol, atol=0)


def test_clip_grad_norm_edge_cases():
    assert ref.clip_grad_norm_([], 1.0) == 0.0
    g = [np.array([3.0, 4.0])]
    assert ref.clip_grad_norm_(g, 10.0) == 5.0
    np.testing.assert_array_equal(g[0], [3.0, 4.0])  # coefficient clamped to 1
    bad = [np.array([1.0, np.inf]), np.array([2.0])]
    with pytest.raises(RuntimeError, match="non-finite"):
        ref.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(bad[0], [1.0, np.inf])  # raised before changing anything
    assert math.isinf(ref.clip_grad_norm_(bad, 1.0))
    np.testing.assert_array_equal(bad[1], [0.0])  # scaled by max_norm / inf, as torch does
    nan = [np.array([1.0, np.nan])]
    assert math.isnan(ref.clip_grad_norm_(nan, 1.0, norm_type=math.inf))
    assert np.isnan(nan[0]).all()
    assert ref.clip_grad_norm_([np.zeros(0), np.array([-2.0])], 1.0, norm_type=math.inf) == 2.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_clip_grad_value_matches_torch(dtype):
    rng = np.random.default_rng(3)
    grads = _grads(rng, dtype)
    grads[0][0] = np.nan
    tps = _torch_grads(grads)
    torch.nn.utils.clip_grad_value_(tps, 0.5, foreach=False)
    ref.clip_grad_value_(grads, 0.5)
    for g, tp in zip(grads, tps):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, tp.grad.numpy())


def test_keras_clipnorm():
    g = [np.array([3.0, 4.0]), np.array([0.3, 0.4]), np.zeros(3), np.array([np.nan])]
    out = ref.keras_clip(g, clipnorm=1.0)
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-15)
    np.testing.assert_array_equal(out[1], g[1] * 1.0 / 1.0)  # under the threshold: unchanged
    np.testing.assert_array_equal(out[2], 0.0)  # a zero norm divides by clipnorm, not by 0
    assert np.isnan(out[3]).all()
    assert all(o is not x for o, x in zip(out, g))  # new arrays


def test_keras_global_clipnorm():
    g = [np.array([3.0]), np.array([4.0]), np.zeros(0)]
    out = ref.keras_clip(g, global_clipnorm=1.0)
    np.testing.assert_allclose(np.concatenate(out), [0.6, 0.8], rtol=1e-15)
    small = ref.keras_clip(g, global_clipnorm=10.0)
    np.testing.assert_allclose(np.concatenate(small), [3.0, 4.0], rtol=1e-15)
    zero = ref.keras_clip([np.zeros(2)], global_clipnorm=3.0)
    np.testing.assert_array_equal(zero[0], 0.0)
    # a non-finite global norm makes every gradient NaN, finite entries included
    inf = ref.keras_clip([np.array([np.inf, 1.0]), np.array([2.0])], global_clipnorm=1.0)
    assert all(np.isnan(o).all() for o in inf)
    f32 = ref.keras_clip([np.array([3.0, 4.0], np.float32)], global_clipnorm=1.0)
    assert f32[0].dtype == np.float32


def test_keras_clipvalue_and_exclusivity():
    g = [np.array([-2.0, 0.1, 3.0])]
    np.testing.assert_array_equal(ref.keras_clip(g, clipvalue=1.0)[0], [-1.0, 0.1, 1.0])
    np.testing.assert_array_equal(ref.keras_clip(g, clipvalue=0)[0], g[0])  # 0 means off, as in Keras
    np.testing.assert_array_equal(g[0], [-2.0, 0.1, 3.0])
    with pytest.raises(ValueError, match="Only one of"):
        ref.keras_clip(g, clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="Only one of"):
        ref.Reference("SGD", [np.zeros(3)], clipnorm=1.0, global_clipnorm=1.0)


def test_reference_class_matches_step_functions():
    rng = np.random.default_rng(11)
    params = [rng.standard_normal(s) for s in SHAPES]
    expect = [p.copy() for p in params]
    states = [{} for _ in params]
    opt = ref.Reference("Adam", params, global_clipnorm=0.5, lr=0.01, amsgrad=True)
    for _ in range(5):
        grads = _grads(rng, np.float64)
        before = [g.copy() for g in grads]
        opt.step(grads, grad_scale=0.25)
        for g, b in zip(grads, before):
            np.testing.assert_array_equal(g, b)
        clipped = ref.keras_clip([g * 0.25 for g in grads], global_clipnorm=0.5)
        for p, g, st in zip(expect, clipped, states):
            ref.adam_step(p, g, st, lr=0.01, amsgrad=True)
    for p, e, st, ost in zip(params, expect, states, opt.state):
        np.testing.assert_array_equal(p, e)
        assert ost["step"] == st["step"] == 5
    with pytest.raises(ValueError):
        opt.step(grads[:1])
