"""Pins the NumPy oracle for the Keras and optax optimizers (fastopt.reference.keras_family and .optax_family)
against Keras 3 and optax themselves.

Keras runs on the torch backend (``KERAS_BACKEND`` defaults to torch here), with ``keras.Variable`` parameters and
``optimizer.apply(grads, variables)``, and with ``keras.config.floatx()`` set to the variables' dtype: with the
default float32 floatx, Keras on torch rounds the learning rate and the Python-float hyperparameters it hands to
``ops.add/multiply/subtract/power/clip`` to float32 even for float64 variables (pinned by
``test_keras_float32_floatx_rounds_float64_hyperparameters``). optax runs under
``jax_enable_x64``; every configuration of one optimizer, in both dtypes, goes through ONE jitted step function
with the float hyperparameters as (weakly typed) arguments, so each optimizer costs a single compilation.

Tolerances, and why:
- float64: rtol=1e-12, atol=1e-14 * max|expected| per array, after 60 steps. The oracle differs from the sources
  only by rounding (Keras's torch backend fuses some operations into foreach kernels, XLA may contract
  multiply-adds, optax recomputes schedule-free's x from y and z each step where the oracle keeps it, Ftrl
  overwrites p by a quotient whose numerator may cancel). Two exceptions, each commented where it applies: Keras
  Adafactor on torch computes its means and clamps in float32 even for float64 (loosened to 1e-6), and optax
  computes the schedule-free warmup learning rate in float32 (the configurations use warmup values exact in
  float32 instead).
- float32: rtol=1e-5, atol=1e-5 * max|expected| per array. Both sides compute in float32 (eps 1.2e-7), with
  scalars (bias corrections, Keras's ``u_product``, schedule-free's weight sum, norms) computed in float32 by the
  sources and in double by the oracle, so a few ulps per operation accumulate over 60 steps.
"""
from __future__ import annotations

import functools
import inspect
import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastopt.reference import keras_family, optax_family  # noqa: E402
from tests.conftest import make_params, mixed_grads  # noqa: E402

# keras.ops.convert_to_numpy calls np.array on torch tensors, which NumPy 2 warns about on every call
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

SHAPES = [(7,), (3, 5), (257,)]
ADAFACTOR_SHAPES = SHAPES + [(2, 3, 4), (4, 1)]  # factoring over the last two axes of a 3-D array; a 1-column one
NSTEPS = 60
DTYPES = [np.float64, np.float32]
#: every Keras and optax rule by fastopt class name (fastopt.reference.STEPS keys KerasNadam "NAdam:keras")
STEPS = {**keras_family.STEPS, **optax_family.STEPS}
STATE_NAMES = {**keras_family.STATE_NAMES, **optax_family.STATE_NAMES}
SCALAR_STATE_NAMES = {**keras_family.SCALAR_STATE_NAMES, **optax_family.SCALAR_STATE_NAMES}


def assert_close(actual, expected, dtype, err_msg="", float32_means=False):
    """The module-docstring tolerances: relative to each entry and to the array's scale. ``float32_means``:
    the source computes some float64 reductions in float32 (Keras Adafactor on torch)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = float(np.abs(expected).max(initial=0.0))
    if dtype is np.float64 and float32_means:
        tol = dict(rtol=1e-6, atol=1e-6 * scale)
    elif dtype is np.float64:
        tol = dict(rtol=1e-12, atol=1e-14 * scale)
    else:
        tol = dict(rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(actual, expected, **tol, err_msg=err_msg)


def _ids(cfg):
    return cfg[0] + "-" + ("-".join(f"{k}={v}" for k, v in cfg[1].items()) or "defaults")


def _shapes(name):
    return ADAFACTOR_SHAPES if name == "KerasAdafactor" else SHAPES


def _data(seed, shapes):
    """float64 parameters and NSTEPS gradient lists of mixed magnitudes (1e-3 .. 1e3)."""
    rng = np.random.default_rng(seed)
    params = make_params(rng, shapes, np.float64)
    return params, [mixed_grads(rng, shapes, np.float64) for _ in range(NSTEPS)]


def reference_run(name, hyper, params, grads_seq, dtype):
    params = [p.astype(dtype) for p in params]
    states = [{} for _ in params]
    step = STEPS[name]
    for grads in grads_seq:
        for p, g, state in zip(params, grads, states):
            step(p, g.astype(dtype), state, **hyper)
    return params, states


def _default(name, key):
    return inspect.signature(STEPS[name]).parameters[key].default


# ------------------------------------------------------------------------------------------------------- Keras

KERAS_CONFIGS = [
    ("Ftrl", {}),
    ("Ftrl", dict(lr=0.05, learning_rate_power=-0.7, initial_accumulator_value=0.5, l1=0.01, l2=0.02)),
    ("Ftrl", dict(lr=0.02, l2_shrinkage=0.05, beta=0.3, weight_decay=0.01)),
    ("Ftrl", dict(lr=0.1, learning_rate_power=0.0, l1=1e-3, maximize=True)),
    ("Lion", {}),
    ("Lion", dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.1)),
    ("Lion", dict(lr=1e-2, weight_decay=0.01, maximize=True)),
    ("Lamb", {}),
    ("Lamb", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Lamb", dict(lr=0.02, maximize=True)),
    ("KerasNadam", {}),
    ("KerasNadam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("KerasNadam", dict(lr=0.005, betas=(0.95, 0.9), maximize=True)),
    ("KerasAdafactor", {}),
    ("KerasAdafactor", dict(lr=0.05, beta2_decay=-0.5, eps=(1e-30, 1e-2), d=0.5, weight_decay=0.1)),
    # lr > 1: the 1/sqrt(t) clamp binds whatever relative_step says
    ("KerasAdafactor", dict(lr=2.0, relative_step=False, eps=(1e-20, 1e-3), maximize=True)),
]
KERAS_CLASS = {"Ftrl": "Ftrl", "Lion": "Lion", "Lamb": "Lamb", "KerasNadam": "Nadam", "KerasAdafactor": "Adafactor"}
KERAS_NAMES = {"lr": "learning_rate", "eps": "epsilon", "l1": "l1_regularization_strength",
               "l2": "l2_regularization_strength", "l2_shrinkage": "l2_shrinkage_regularization_strength",
               "beta2_decay": "beta_2_decay", "d": "clip_threshold"}  # the last two: Adafactor's (torch's names)
#: reference state name -> the Keras optimizer's list of variables (one per model variable)
KERAS_STATE = {"Ftrl": {"accumulator": "_accumulators", "linear": "_linears"},
               "Lion": {"exp_avg": "_momentums"},
               "Lamb": {"exp_avg": "_momentums", "exp_avg_sq": "_velocities"},
               "KerasNadam": {"exp_avg": "_momentums", "exp_avg_sq": "_velocities"},
               "KerasAdafactor": {"r": "_r", "c": "_c", "v": "_v"}}


def keras_kwargs(hyper, names=None):
    """Keras's keyword arguments for fastopt's ``hyper``: ``betas`` split, a zero ``weight_decay``
    as None, Adafactor's ``eps`` pair, every other name through ``names`` (default ``KERAS_NAMES``)."""
    names = KERAS_NAMES if names is None else names
    kw = {}
    for k, v in hyper.items():
        if k == "maximize":
            continue
        if k == "betas":
            kw["beta_1"], kw["beta_2"] = v
        elif k == "weight_decay":
            kw[k] = v or None
        elif k == "eps" and isinstance(v, tuple):  # Adafactor's (epsilon_1, epsilon_2), torch's name
            kw["epsilon_1"], kw["epsilon_2"] = v
        else:
            kw[names.get(k, k)] = v
    return kw


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def keras_run(keras, name, hyper, params, grads_seq, dtype, floatx=None):
    """Run Keras with ``keras.config.floatx()`` set to the variables' dtype (or ``floatx``) meanwhile: the torch
    backend turns Python floats into floatx tensors (see the module docstring of the reference)."""
    kw = keras_kwargs(hyper)
    lr = kw.pop("learning_rate", _default(name, "lr"))
    dname = np.dtype(dtype).name
    sign = -1.0 if hyper.get("maximize") else 1.0
    saved = keras.config.floatx()
    keras.config.set_floatx(floatx or dname)
    try:
        opt = getattr(keras.optimizers, KERAS_CLASS[name])(learning_rate=lr, **kw)
        variables = [keras.Variable(p.astype(dtype), dtype=dname) for p in params]
        for grads in grads_seq:
            opt.apply([keras.ops.convert_to_tensor((sign * g).astype(dtype), dtype=dname) for g in grads],
                      variables)
    finally:
        keras.config.set_floatx(saved)
    return [keras.ops.convert_to_numpy(v) for v in variables], opt


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("config", KERAS_CONFIGS, ids=[_ids(c) for c in KERAS_CONFIGS])
def test_matches_keras(keras, config, dtype):
    name, hyper = config
    params, grads_seq = _data(100 + KERAS_CONFIGS.index(config), _shapes(name))
    expected, opt = keras_run(keras, name, hyper, params, grads_seq, dtype)
    mine, states = reference_run(name, hyper, params, grads_seq, dtype)
    # Keras 3.15 on torch computes ops.mean of float64 tensors in float32 (backend/torch/numpy.py mean casts to
    # result_type(x.dtype, "float32"), which Keras's JAX-like promotion lattice resolves to float32), and
    # ops.maximum/minimum of a float64 tensor and a Python float likewise: Adafactor's RMS(p), RMS(u), row and
    # column means and its clamps carry float32 rounding (~6e-8) even for float64 variables. Loosened for it only.
    f32_means = name == "KerasAdafactor"
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, err_msg=f"{name} param {i}", float32_means=f32_means)
    compared = 0
    for ref_name, attr in KERAS_STATE[name].items():
        for i, (state, var) in enumerate(zip(states, getattr(opt, attr))):
            if ref_name in state:  # Adafactor: r, c for ndim >= 2, v for ndim < 2 (Keras keeps dummies/full v)
                assert state[ref_name].dtype == dtype and state[ref_name].shape == tuple(var.shape)
                assert_close(state[ref_name], keras.ops.convert_to_numpy(var), dtype, err_msg=f"{ref_name} {i}",
                             float32_means=f32_means)
                compared += 1
    assert compared >= len(params)
    assert all(state["step"] == NSTEPS for state in states)
    if name == "KerasNadam":
        u_product = float(keras.ops.convert_to_numpy(opt._u_product))
        assert math.isclose(states[0]["u_product"], u_product, rel_tol=1e-12 if dtype is np.float64 else 1e-5)


def test_keras_float32_floatx_rounds_float64_hyperparameters(keras):
    """With the default floatx (float32), Keras on torch computes float64 variables with float32-rounded
    hyperparameters: the learning-rate Variable, and every Python float given to ops.add/multiply/subtract/
    power/clip (here Ftrl's learning_rate_power and l1)."""
    hyper = dict(lr=0.05, learning_rate_power=-0.7, l1=0.01)
    as32 = {k: float(np.float32(v)) for k, v in hyper.items()}
    params, grads_seq = _data(7, SHAPES)
    expected, _ = keras_run(keras, "Ftrl", hyper, params, grads_seq[:5], np.float64, floatx="float32")
    exact, _ = reference_run("Ftrl", hyper, params, grads_seq[:5], np.float64)
    rounded, _ = reference_run("Ftrl", as32, params, grads_seq[:5], np.float64)
    for e, x, r in zip(expected, exact, rounded):
        assert_close(r, e, np.float64)
        assert not np.allclose(x, e, rtol=1e-9, atol=0)


def test_keras_defaults(keras):
    for name, cls in KERAS_CLASS.items():
        sig = inspect.signature(getattr(keras.optimizers, cls).__init__).parameters
        for key, param in inspect.signature(STEPS[name]).parameters.items():
            if param.default is inspect.Parameter.empty or key == "maximize":
                continue
            for k, v in keras_kwargs({key: param.default}).items():
                assert sig[k].default == v, (name, key)


# -------------------------------------------------------------------------------------------------------- optax

OPTAX_CONFIGS = [
    ("LARS", {}),
    ("LARS", dict(lr=0.1, weight_decay=1e-2, trust_coefficient=0.02, eps=1e-8, momentum=0.8)),
    ("LARS", dict(lr=0.05, nesterov=True, weight_decay=1e-3, momentum=0.95)),
    ("LARS", dict(lr=0.05, momentum=0.0, maximize=True)),
    ("Yogi", {}),
    ("Yogi", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4)),
    ("Yogi", dict(lr=0.01, eps_root=1e-8, initial_accumulator_value=1e-3, maximize=True)),
    ("AdaBelief", {}),
    ("AdaBelief", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, eps_root=1e-10)),
    ("AdaBelief", dict(lr=0.01, nesterov=True, maximize=True)),
    ("Adan", {}),
    ("Adan", dict(lr=0.01, betas=(0.9, 0.8, 0.95), eps=1e-6, eps_root=0.0, weight_decay=0.05)),
    ("Adan", dict(lr=0.005, weight_decay=0.01, maximize=True)),
    ("ScheduleFreeAdamW", {}),
    # optax computes the warmup learning rate in float32 even under x64 (int32 count / warmup_steps is float32):
    # with a power-of-two lr and warmup_steps every warmup value is exact in float32, so float64 stays tight
    ("ScheduleFreeAdamW", dict(lr=2 ** -7, warmup_steps=8, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("ScheduleFreeAdamW", dict(lr=0.005, weight_lr_power=1.0, weight_decay=0.01, maximize=True)),
    ("ScheduleFreeAdamW", dict(lr=2 ** -6, warmup_steps=64, betas=(0.95, 0.9))),  # still warming up at the end
    ("ScheduleFreeSGD", {}),
    ("ScheduleFreeSGD", dict(lr=2 ** -7, warmup_steps=4, b1=0.8, weight_decay=0.01)),
    ("ScheduleFreeSGD", dict(lr=0.003, weight_lr_power=3.0, maximize=True)),
]
STATIC = {"nesterov", "warmup_steps"}  # optax branches on these in Python: baked into the jitted function


def optax_kwargs(name, hyper):
    """(static, traced) optax keyword arguments for a reference configuration; the learning rate is always given
    (optax has no default for most), the rest only when the configuration sets it."""
    kw = {"learning_rate": hyper.get("lr", _default(name, "lr"))}
    for k, v in hyper.items():
        if k in ("lr", "maximize"):
            continue
        if k == "betas":
            kw.update(zip(("b1", "b2", "b3"), v))
        elif k == "warmup_steps":
            kw[k] = v or None  # the reference's 0 is optax's None (optax's 0 means lr = 0 for ever)
        else:
            kw[k] = v
    static = {k: v for k, v in kw.items() if k in STATIC}
    return static, {k: v for k, v in kw.items() if k not in STATIC}


def optax_factory(optax, name, kw):
    if name == "LARS":
        return optax.lars(**kw)
    if name == "Yogi":
        if "eps_root" in kw or "initial_accumulator_value" in kw:  # only scale_by_yogi takes these
            lr = kw.pop("learning_rate")
            return optax.chain(optax.scale_by_yogi(**kw), optax.scale_by_learning_rate(lr))
        return optax.yogi(**kw)
    if name == "AdaBelief":
        return optax.adabelief(**kw)
    if name == "Adan":
        return optax.adan(**kw)
    if name == "ScheduleFreeAdamW":
        return optax.contrib.schedule_free_adamw(**kw)
    if name == "ScheduleFreeSGD":
        return optax.contrib.schedule_free_sgd(**kw)
    raise KeyError(name)


def optax_state(optax, name, state, params):
    """Reference state name -> list of arrays (one per parameter), plus scalars, from an optax state."""
    get = functools.partial(optax.tree.get, state)
    if name == "LARS":
        return {"momentum_buffer": [-t for t in get("trace")]}
    if name == "Yogi":
        return {"exp_avg": get("mu"), "exp_avg_sq": get("nu")}
    if name == "AdaBelief":
        return {"exp_avg": get("mu"), "exp_avg_var": get("nu")}
    if name == "Adan":
        return {"exp_avg": get("m"), "exp_avg_diff": get("v"), "exp_avg_sq": get("n"), "pre_grad": get("g")}
    out = {"z": state.z, "x": optax.contrib.schedule_free_eval_params(state, params),
           "max_lr": state.max_lr, "weight_sum": state.weight_sum}
    if name == "ScheduleFreeAdamW":
        out["exp_avg_sq"] = optax.tree.get(state.base_optimizer_state, "nu")
    return out


@functools.lru_cache(maxsize=None)
def optax_results(name):
    """Run every OPTAX_CONFIGS entry of ``name`` in both dtypes through optax: {(config index, dtype): (params,
    states)}. One jitted step function serves them all (Python-float hyperparameters are weakly typed jit
    arguments, so float32 runs stay float32)."""
    optax = pytest.importorskip("optax")
    import optax.contrib  # noqa: F401
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jobs = []  # (key, static kwargs, traced kwargs, params, grads_seq)
    for index, (n, hyper) in enumerate(OPTAX_CONFIGS):
        if n != name:
            continue
        static, traced = optax_kwargs(name, hyper)
        params, grads_seq = _data(200 + index, SHAPES)
        sign = -1.0 if hyper.get("maximize") else 1.0
        for dtype in DTYPES:
            jobs.append(((index, dtype), static, traced, [p.astype(dtype) for p in params],
                         [[(sign * g).astype(dtype) for g in grads] for grads in grads_seq]))

    def make(j, traced):
        return optax_factory(optax, name, dict(jobs[j][1], **traced))

    @jax.jit
    def init(params, traced):
        return [make(j, traced[j]).init(params[j]) for j in range(len(jobs))]

    @jax.jit
    def step(params, states, grads, traced):
        new_params, new_states = [], []
        for j in range(len(jobs)):
            updates, state = make(j, traced[j]).update(grads[j], states[j], params[j])
            new_params.append(optax.apply_updates(params[j], updates))
            new_states.append(state)
        return new_params, new_states

    traced = [job[2] for job in jobs]
    params = [[jax.numpy.asarray(p) for p in job[3]] for job in jobs]
    states = init(params, traced)
    for s in range(NSTEPS):
        params, states = step(params, states, [job[4][s] for job in jobs], traced)
    results = {}
    for job, p, st in zip(jobs, params, states):
        state = {k: (np.asarray(v) if not isinstance(v, list) else [np.asarray(a) for a in v])
                 for k, v in optax_state(optax, name, st, p).items()}
        results[job[0]] = ([np.asarray(a) for a in p], state)
    return results


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("config", OPTAX_CONFIGS, ids=[_ids(c) for c in OPTAX_CONFIGS])
def test_matches_optax(config, dtype):
    name, hyper = config
    index = OPTAX_CONFIGS.index(config)
    expected, expected_state = optax_results(name)[(index, dtype)]
    params, grads_seq = _data(200 + index, SHAPES)
    mine, states = reference_run(name, hyper, params, grads_seq, dtype)
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert a.dtype == dtype and e.dtype == dtype
        assert_close(a, e, dtype, err_msg=f"{name} param {i}")
    compared = 0
    for key, value in expected_state.items():
        if isinstance(value, list):
            for i, (p, state, e) in enumerate(zip(mine, states, value)):
                if key == "x":
                    a = optax_family.schedule_free_eval_params(p, state)
                elif key in state:  # LARS with momentum=0 keeps no buffer
                    a = state[key]
                else:
                    continue
                assert a.dtype == dtype
                assert_close(a, e, dtype, err_msg=f"{key} {i}")
                compared += 1
        else:  # schedule-free's scalars, kept in the parameters' dtype by optax
            for state in states:
                assert math.isclose(state[key], float(value), rel_tol=1e-12 if dtype is np.float64 else 1e-6)
    assert compared >= len(params) or hyper.get("momentum") == 0.0


OPTAX_SIGNATURES = {"LARS": ("lars",), "Yogi": ("yogi", "scale_by_yogi"), "AdaBelief": ("adabelief",),
                    "Adan": ("adan",), "ScheduleFreeAdamW": ("contrib.schedule_free_adamw",),
                    "ScheduleFreeSGD": ("contrib.schedule_free_sgd",)}


def test_optax_defaults():
    optax = pytest.importorskip("optax")
    import optax.contrib  # noqa: F401
    for name, paths in OPTAX_SIGNATURES.items():
        sigs = [inspect.signature(functools.reduce(getattr, path.split("."), optax)).parameters for path in paths]
        for key, param in inspect.signature(STEPS[name]).parameters.items():
            if param.default is inspect.Parameter.empty or key == "maximize":
                continue
            static, traced = optax_kwargs(name, {key: param.default})
            for k, v in dict(static, **traced).items():
                source = next(s[k] for s in sigs if k in s)
                if source.default is inspect.Parameter.empty:
                    assert k == "learning_rate", (name, k)  # optax has no default learning rate for these
                    continue
                if name == "ScheduleFreeSGD" and k == "weight_decay":
                    assert source.default is None and v == 0.0  # optax's None: no decay
                    continue
                assert source.default == v, (name, key)


# ------------------------------------------------------------------------------------- conventions, no frameworks

@pytest.mark.parametrize("name", sorted(STEPS))
def test_conventions(name):
    """float32 stays float32, g is untouched, step is a Python int, the state holds exactly the documented
    names, and the defaults run without producing non-finite values."""
    params, grads_seq = _data(3, _shapes(name))
    params = [p.astype(np.float32) for p in params]
    states = [{} for _ in params]
    for grads in grads_seq[:3]:
        for p, g, state in zip(params, grads, states):
            g = g.astype(np.float32)
            g0 = g.copy()
            STEPS[name](p, g, state)
            assert np.array_equal(g, g0)
            assert p.dtype == np.float32 and np.isfinite(p).all()
    for state in states:
        assert type(state["step"]) is int and state["step"] == 3
        arrays = {k for k, v in state.items() if isinstance(v, np.ndarray)}
        assert arrays <= set(STATE_NAMES[name]) and arrays
        assert all(state[k].dtype == np.float32 for k in arrays)
        scalars = set(state) - arrays - {"step"}
        assert scalars == set(SCALAR_STATE_NAMES.get(name, ()))
        assert all(type(state[k]) is float for k in scalars)
    assert set(STEPS) == set(STATE_NAMES)


def test_maximize_is_negated_gradient():
    rng = np.random.default_rng(5)
    for name, step in STEPS.items():
        p0 = rng.standard_normal((3, 4))
        a, b, sa, sb = p0.copy(), p0.copy(), {}, {}
        for _ in range(3):
            g = rng.standard_normal((3, 4))
            step(a, g, sa, maximize=True)
            step(b, -g, sb)
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_adafactor_state_shapes():
    state3, state1 = {}, {}
    keras_family.keras_adafactor_step(np.ones((2, 3, 4)), np.ones((2, 3, 4)), state3)
    keras_family.keras_adafactor_step(np.ones(5), np.ones(5), state1)
    assert state3["r"].shape == (2, 3) and state3["c"].shape == (2, 4) and "v" not in state3
    assert state1["v"].shape == (5,) and "r" not in state1


def test_schedule_free_eval_and_warmup():
    p = np.array([1.0, -2.0, 3.0])
    state = {}
    x = optax_family.schedule_free_eval_params(p, state)
    assert np.array_equal(x, p) and x is not p
    # optax's base optimizer counts from 0: the first warmup step does not move z (nor x, y)
    optax_family.schedule_free_adamw_step(p, np.ones(3), state, warmup_steps=4)
    assert np.array_equal(state["z"], [1.0, -2.0, 3.0]) and np.array_equal(p, [1.0, -2.0, 3.0])
    assert math.isclose(state["max_lr"], 0.0025 / 4, rel_tol=1e-15)
    assert math.isclose(state["weight_sum"], (0.0025 / 4) ** 2, rel_tol=1e-15)
    optax_family.schedule_free_adamw_step(p, np.ones(3), state, warmup_steps=4)
    assert (state["z"] < [1.0, -2.0, 3.0]).all()
    np.testing.assert_allclose(p, 0.9 * state["x"] + 0.1 * state["z"], rtol=1e-15)
    assert optax_family.schedule_free_eval_params(p, state) is not state["x"]
