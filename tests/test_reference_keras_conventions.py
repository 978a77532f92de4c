"""Pins the NumPy oracle for Keras's conventions of SGD, Adam, AdamW, RMSprop and Adagrad
(fastopt.reference.keras_conventions) against Keras 3 itself, and the fastopt classes under
``convention="keras"`` against Keras directly.

Keras runs on its torch backend (``KERAS_BACKEND=torch``, whose ``torch_*.py`` overrides compute these rules with
``torch._foreach_*``) with ``keras.Variable`` parameters and ``optimizer.apply(grads, variables)``, and with
``keras.config.floatx()`` set to the variables' dtype, then restored: under the default float32 floatx Keras
keeps the learning rate in a float32 Variable even for float64 variables (pinned by
``test_keras_float32_floatx_rounds_the_learning_rate``).

Tolerances (as tests/test_reference_keras_optax.py), after 60 steps of gradients spanning six decades:
- float64: rtol=1e-12, atol=1e-14 * max|expected| per array. The oracle follows the generic Keras code; the torch
  backend computes the same rules in another order (``m * b + (1 - b) * g``, Nesterov's ``(p - lr g) + mu b``,
  centered RMSprop's ``(v + eps) - a^2``, the decay ``p (1 - wd lr)``) with FMA-fused ``add(alpha=)``: a few ulps
  per step.
- float32: rtol=1e-5, atol=1e-5 * max|expected| per array. Keras computes Adam's bias corrections in float32 for
  float32 variables, the oracle in double; a few ulps per operation accumulate.
"""
from __future__ import annotations

import functools
import inspect
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastopt  # noqa: E402
from fastopt import reference  # noqa: E402
from fastopt.reference import keras_conventions as rkc  # noqa: E402
from tests import test_reference_keras_optax  # noqa: E402
from tests.conftest import make_params, mixed_grads, require_backend  # noqa: E402

# keras.ops.convert_to_numpy calls np.array on torch tensors, which NumPy 2 warns about on every call
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

SHAPES = [(7,), (3, 5), (257,)]
NSTEPS = 60
DTYPES = [np.float64, np.float32]

#: (fastopt class name, hyperparameters of the "<name>:keras" reference): defaults first, then every option
CONFIGS = [
    ("SGD", {}),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.03, momentum=0.5, maximize=True)),
    ("SGD", dict(lr=0.05, nesterov=True, weight_decay=0.05)),  # Nesterov without momentum: plain SGD in Keras
    ("Adam", {}),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adam", dict(lr=0.005, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), amsgrad=True, maximize=True)),
    ("AdamW", {}),
    ("AdamW", dict(lr=0.02, betas=(0.85, 0.995), weight_decay=0.1, amsgrad=True)),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=0.003, alpha=0.8, eps=1e-6, weight_decay=0.01, momentum=0.7)),
    ("RMSprop", dict(lr=0.003, centered=True)),
    ("RMSprop", dict(lr=0.002, centered=True, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.05, initial_accumulator_value=0.5, eps=1e-6, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.0, maximize=True)),
]
KERAS_NAMES = {"lr": "learning_rate", "eps": "epsilon", "alpha": "rho"}
#: reference state name -> the Keras optimizer's list of variables (one per model variable)
KERAS_STATE = {"SGD": {"momentum_buffer": "momentums"},
               "Adam": {"exp_avg": "_momentums", "exp_avg_sq": "_velocities", "max_exp_avg_sq": "_velocity_hats"},
               "RMSprop": {"square_avg": "_velocities", "momentum_buffer": "_momentums",
                           "grad_avg": "_average_gradients"},
               "Adagrad": {"sum": "_accumulators"}}
KERAS_STATE["AdamW"] = KERAS_STATE["Adam"]


def _ids(cfg):
    return cfg[0] + "-" + ("-".join(f"{k}={v}" for k, v in cfg[1].items()) or "defaults")


def assert_close(actual, expected, dtype, err_msg=""):
    """The module-docstring tolerances: relative to each entry and to the array's scale."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = float(np.abs(expected).max(initial=0.0))
    tol = dict(rtol=1e-12, atol=1e-14 * scale) if dtype is np.float64 else dict(rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(actual, expected, **tol, err_msg=err_msg)


def _data(seed):
    """float64 parameters and NSTEPS gradient lists of mixed magnitudes (1e-3 .. 1e3)."""
    rng = np.random.default_rng(seed)
    return make_params(rng, SHAPES, np.float64), [mixed_grads(rng, SHAPES, np.float64) for _ in range(NSTEPS)]


def _default(name, key):
    return inspect.signature(rkc.STEPS[f"{name}:keras"]).parameters[key].default


def keras_kwargs(hyper):
    return test_reference_keras_optax.keras_kwargs(hyper, KERAS_NAMES)


@pytest.fixture(scope="module")
def keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these pins run Keras on its torch backend")
    return keras


def keras_run(keras, name, hyper, params, grads_seq, dtype, floatx=None, options=None):
    """Run Keras's ``name`` with ``floatx`` (default: the variables' dtype) meanwhile; returns the
    variables as arrays and the optimizer."""
    kw = keras_kwargs(hyper)
    lr = kw.pop("learning_rate", _default(name, "lr"))
    dname = np.dtype(dtype).name
    sign = -1.0 if hyper.get("maximize") else 1.0
    saved = keras.config.floatx()
    keras.config.set_floatx(floatx or dname)
    try:
        opt = getattr(keras.optimizers, name)(learning_rate=lr, **kw, **(options or {}))
        variables = [keras.Variable(p.astype(dtype), dtype=dname) for p in params]
        for grads in grads_seq:
            opt.apply([keras.ops.convert_to_tensor((sign * g).astype(dtype), dtype=dname) for g in grads],
                      variables)
    finally:
        keras.config.set_floatx(saved)
    return [keras.ops.convert_to_numpy(v) for v in variables], opt


@functools.lru_cache(maxsize=None)
def keras_results(index, dtype):
    """Keras's parameters and state (reference names) after CONFIGS[index] in ``dtype``."""
    keras = pytest.importorskip("keras")
    name, hyper = CONFIGS[index]
    params, grads_seq = _data(300 + index)
    out, opt = keras_run(keras, name, hyper, params, grads_seq, dtype)
    states = {ref_name: [keras.ops.convert_to_numpy(v) for v in getattr(opt, attr)]
              for ref_name, attr in KERAS_STATE[name].items() if getattr(opt, attr, None)}
    return out, states


def reference_run(name, hyper, params, grads_seq, dtype):
    params = [p.astype(dtype) for p in params]
    states = [{} for _ in params]
    step = rkc.STEPS[f"{name}:keras"]
    for grads in grads_seq:
        for p, g, state in zip(params, grads, states):
            g = g.astype(dtype)
            before = g.copy()
            step(p, g, state, **hyper)
            np.testing.assert_array_equal(g, before)  # the oracle never writes the gradient
    return params, states


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[_ids(c) for c in CONFIGS])
def test_reference_matches_keras(keras, index, dtype):
    name, hyper = CONFIGS[index]
    expected, expected_states = keras_results(index, dtype)
    params, grads_seq = _data(300 + index)
    mine, states = reference_run(name, hyper, params, grads_seq, dtype)
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, err_msg=f"{name} param {i}")
    # every buffer Keras keeps, under torch's name, and no other
    for state in states:
        assert set(state) - {"step"} == set(expected_states), (set(state), set(expected_states))
        assert name == "SGD" or state["step"] == NSTEPS
    for key, arrays in expected_states.items():
        for i, (state, e) in enumerate(zip(states, arrays)):
            assert state[key].dtype == dtype and state[key].shape == e.shape
            assert_close(state[key], e, dtype, err_msg=f"{name} {key} {i}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[_ids(c) for c in CONFIGS])
def test_fastopt_matches_keras(keras, index, dtype, backend):
    """fastopt's class with ``convention="keras"`` (the kernels, not the oracle) against Keras directly."""
    name, hyper = CONFIGS[index]
    expected, expected_states = keras_results(index, dtype)
    params, grads_seq = _data(300 + index)
    mine = [p.astype(dtype) for p in params]
    opt = getattr(fastopt, name)(mine, convention="keras", backend=backend, **hyper)
    for grads in grads_seq:
        opt.step([g.astype(dtype) for g in grads])
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert_close(a, e, dtype, err_msg=f"{name} param {i}")
    for key, arrays in expected_states.items():
        for i, (state, e) in enumerate(zip(opt.state, arrays)):
            assert_close(state[key], e, dtype, err_msg=f"{name} {key} {i}")


@pytest.mark.parametrize("options", [dict(clipvalue=0.5), dict(global_clipnorm=1.0),
                                     dict(use_ema=True, ema_momentum=0.9), dict(gradient_accumulation_steps=3)],
                         ids=["clipvalue", "global_clipnorm", "ema", "accumulate"])
@pytest.mark.parametrize("index", [2, 6, 10, 14, 16], ids=[_ids(CONFIGS[i]) for i in (2, 6, 10, 14, 16)])
def test_fastopt_matches_keras_with_options(keras, index, options):
    """Keras's clipping, weight EMA and gradient accumulation around the Keras rules (float64, numba)."""
    require_backend("numba")
    name, hyper = CONFIGS[index]
    params, grads_seq = _data(400 + index)
    grads_seq = grads_seq[:21]
    expected, kopt = keras_run(keras, name, hyper, params, grads_seq, np.float64, options=options)
    mine = [p.copy() for p in params]
    opt = getattr(fastopt, name)(mine, convention="keras", backend="numba", **hyper, **options)
    for grads in grads_seq:
        opt.step(grads)
    # Keras's clip_by_global_norm takes ops.minimum(1 / norm, 1 / clip), which Keras's type promotion computes
    # in float32 even for float64 (see fastopt/reference/keras_family.py): its clipping scale is float32-rounded
    rtol = 1e-6 if "global_clipnorm" in options else 1e-12
    for a, e in zip(mine, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-2 * float(np.abs(e).max()))
    if options.get("use_ema"):
        for a, e in zip(opt.ema_params, kopt._model_variables_moving_average):
            assert_close(a, keras.ops.convert_to_numpy(e), np.float64)


def test_keras_float32_floatx_rounds_the_learning_rate(keras):
    """With the default floatx (float32), Keras on torch computes float64 variables with the learning rate
    rounded to float32 (its Variable); the other hyperparameters stay exact (the weight decay's factor
    ``1 - wd * lr`` would be a float32 number too, so these configurations have none)."""
    for name, hyper in [("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, amsgrad=True)),
                        ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                        ("RMSprop", dict(lr=0.003, alpha=0.8, momentum=0.7))]:
        params, grads_seq = _data(7)
        expected, _ = keras_run(keras, name, hyper, params, grads_seq[:5], np.float64, floatx="float32")
        exact, _ = reference_run(name, hyper, params, grads_seq[:5], np.float64)
        rounded, _ = reference_run(name, dict(hyper, lr=float(np.float32(hyper["lr"]))), params, grads_seq[:5],
                                   np.float64)
        for e, x, r in zip(expected, exact, rounded):
            assert_close(r, e, np.float64, err_msg=name)
            assert not np.allclose(x, e, rtol=1e-9, atol=0), name


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_keras_defaults(keras, name):
    """The reference's defaults and fastopt's ``convention="keras"`` param groups are Keras 3's."""
    sig = inspect.signature(getattr(keras.optimizers, name).__init__).parameters
    opt = getattr(fastopt, name)([np.zeros(3)], convention="keras")
    group = opt.param_groups[0]
    checked = 0
    for key, param in inspect.signature(rkc.STEPS[f"{name}:keras"]).parameters.items():
        if param.default is inspect.Parameter.empty or key == "maximize":
            continue
        assert group[key] == param.default, (name, key)
        assert type(group[key]) is type(param.default), (name, key)  # a plain value, no sentinel
        for k, v in keras_kwargs({key: param.default}).items():
            assert sig[k].default == v, (name, key)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_torch_defaults_are_unchanged(name):
    """The torch convention keeps torch.optim's defaults, in the signature and in the param groups."""
    torch = pytest.importorskip("torch")
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    mine = inspect.signature(getattr(fastopt, name)).parameters
    group = getattr(fastopt, name)([np.zeros(3)]).param_groups[0]
    assert group["convention"] == "torch" and mine["convention"].default == "torch"
    for key in ("lr", "betas", "eps", "weight_decay", "momentum", "alpha", "dampening", "lr_decay",
                "initial_accumulator_value", "nesterov", "amsgrad", "centered"):
        if key in theirs:
            assert mine[key].default == theirs[key].default, (name, key)
            assert group[key] == theirs[key].default and type(group[key]) in (float, bool, tuple), (name, key)


def test_reference_selects_the_keras_rules():
    p, q = np.ones(4), np.ones(4)
    g = np.linspace(-1.0, 2.0, 4)
    ref = reference.Reference("RMSprop", [p], convention="keras", lr=0.01)
    ref.step([g])
    rkc.keras_rmsprop_step(q, g, {}, lr=0.01)
    np.testing.assert_array_equal(p, q)
    assert set(ref.state[0]) == {"step", "square_avg"}
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
        assert reference.STEPS[f"{name}:keras"] is rkc.STEPS[f"{name}:keras"]
        assert reference.STATE_NAMES[f"{name}:keras"] == reference.STATE_NAMES[name]  # torch's names


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
@pytest.mark.parametrize("bad", ["tf", "Keras", None, 1])
def test_bad_convention_raises_before_any_buffer(name, bad):
    p = np.ones(4)
    with pytest.raises(ValueError, match=r"convention must be 'torch' or 'keras'"):
        getattr(fastopt, name)([p], convention=bad)
    opt = getattr(fastopt, name)([p], lr=0.1)
    opt.step([np.ones(4)])
    before = p.copy()
    opt.param_groups[0]["convention"] = bad
    with pytest.raises(ValueError, match=r"convention must be 'torch' or 'keras' \(param_groups\[0\]\)"):
        opt.step([np.ones(4)])
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("name, hyper, match", [
    ("SGD", dict(momentum=0.9, dampening=0.1), r"dampening must be 0 with convention='keras'"),
    ("SGD", dict(momentum=1.5), r"momentum.*must be <= 1"),
    ("Adagrad", dict(lr_decay=0.01), r"lr_decay must be 0 with convention='keras'"),
    ("Adam", dict(eps=-1.0), r"epsilon value"),
])
def test_torch_only_options_are_rejected_under_keras(name, hyper, match):
    p = np.ones(4)
    with pytest.raises(ValueError, match=match):
        getattr(fastopt, name)([p], convention="keras", **hyper)
    getattr(fastopt, name)([p], **{k: v for k, v in hyper.items() if k != "eps"})  # torch takes them


def test_group_edit_switches_convention():
    """convention is a group hyperparameter: an edit takes effect at the next step, and a state_dict carries it."""
    rng = np.random.default_rng(5)
    p, q = rng.standard_normal(9), rng.standard_normal(9)
    q[...] = p
    opt = fastopt.Adagrad([p], lr=0.1)
    state = {}
    g1, g2 = rng.standard_normal(9), rng.standard_normal(9)
    opt.step([g1])
    reference.adagrad_step(q, g1, state, lr=0.1)
    opt.param_groups[0]["convention"] = "keras"
    opt.step([g2])
    rkc.keras_adagrad_step(q, g2, state, lr=0.1, eps=1e-10)  # the group keeps its eps
    np.testing.assert_allclose(p, q, rtol=1e-14)
    fresh = fastopt.Adagrad([p.copy()])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["convention"] == "keras"
