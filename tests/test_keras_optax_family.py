"""What the generic tests do not cover for the Keras / optax family: schedule-free's eval()/train() modes and
its history-dependent scalar state (max_lr, weight_sum) through state_dict, per-class validation, and parity of
each class with Keras 3 (torch backend, floatx float64 for float64) and optax (x64) themselves.

The library runs reuse tests/test_reference_keras_optax.py's configurations, data and runners, which pin the
NumPy references; here the fastopt classes meet the same library results directly.
"""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import fastopt
from fastopt import reference, schedules
from fastopt.reference import optax_family
from tests.conftest import make_params, mixed_grads, require_backend
from tests.test_reference_keras_optax import (KERAS_CONFIGS, KERAS_STATE, NSTEPS, OPTAX_CONFIGS, _data, _ids,
                                              _shapes, assert_close, keras, keras_run, optax_results)

assert keras  # a fixture (imported for pytest to find)
# keras.ops.convert_to_numpy calls np.array on torch tensors, which NumPy 2 warns about on every call
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

FAMILY = ("Ftrl", "Lion", "Yogi", "AdaBelief", "Adan", "ScheduleFreeAdamW", "ScheduleFreeSGD")
SHAPES = [(3, 4), (5,), (1,), (2, 1, 3)]
SF = [("ScheduleFreeAdamW", dict(lr=0.01, warmup_steps=3, betas=(0.8, 0.99), weight_decay=0.05)),
      ("ScheduleFreeSGD", dict(lr=0.1, warmup_steps=2, b1=0.8, weight_decay=0.01))]


@pytest.fixture(autouse=True)
def _numba():
    require_backend("numba")


def _bits(a):
    return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def snapshot(opt):
    params = [p for g in opt.param_groups for p in g["params"]]
    return ([_bits(p) for p in params],
            [{k: (_bits(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in opt.state],
            list(opt._steps), opt.training)


def _grads(seed, n, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [mixed_grads(rng, shapes, dtype) for _ in range(n)]


def _run(name, hyper, dtype=np.float64, steps=6, seed=0, shapes=SHAPES, **options):
    params = make_params(np.random.default_rng(seed), shapes, dtype)
    opt = getattr(fastopt, name)(params, backend="numba", **hyper, **options)
    for g in _grads(seed + 1, steps, dtype, shapes):
        opt.step(g)
    return opt, params


# --------------------------------------------------------------------------------------- schedule-free modes
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_eval_writes_x_and_train_restores_y(cfg, dtype):
    name, hyper = cfg
    rng = np.random.default_rng(0)
    params = make_params(rng, SHAPES, dtype)
    ref_params = [p.copy() for p in params]
    opt = getattr(fastopt, name)(params, backend="numba", **hyper)
    ref = reference.Reference(name, ref_params, **hyper)
    for g in _grads(1, 9, dtype):
        opt.step(g)
        ref.step(g)
    y = [p.copy() for p in params]
    assert opt.training is True
    assert opt.eval() is opt and opt.training is False
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    for p, r, s, st in zip(params, ref_params, opt.state, ref.state):
        np.testing.assert_allclose(p, optax_family.schedule_free_eval_params(r, st), **tol)  # the reference's x
        np.testing.assert_array_equal(p, s["x"])
        assert not np.array_equal(p, r)  # x is not y
    x = [p.copy() for p in params]
    opt.eval()  # idempotent
    for p, a in zip(params, x):
        assert _bits(p) == _bits(a)
    opt.train()
    assert opt.training is True
    for p, a in zip(params, y):
        assert _bits(p) == _bits(a)  # y comes back to the bit
    opt.train()  # idempotent
    for p, a in zip(params, y):
        assert _bits(p) == _bits(a)


@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_switching_modes_leaves_training_bit_identical(cfg):
    name, hyper = cfg
    a, pa = _run(name, hyper, steps=0)
    b, pb = _run(name, hyper, steps=0)
    for k, g in enumerate(_grads(3, 10)):
        a.step(g)
        b.step(g)
        if k % 3 == 1:
            b.eval()
            b.train()
    for p, q in zip(pa, pb):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_step_in_eval_mode_raises_and_changes_nothing(cfg):
    name, hyper = cfg
    opt, params = _run(name, hyper, steps=3)
    opt.eval()
    before = snapshot(opt)
    for call in (lambda g: opt.step(g), lambda g: fastopt.LossScaler(init_scale=2.0).step(opt, g)):
        with pytest.raises(RuntimeError, match=rf"{name}\.step\(\) in eval mode.*call train\(\)"):
            call(_grads(4, 1)[0])
        assert snapshot(opt) == before
    opt.train()
    opt.step(_grads(4, 1)[0])
    assert opt._steps == [4, 4, 4, 4]


@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_eval_before_an_update_leaves_the_parameters(cfg):
    """x starts at the parameters: before a parameter's first update eval() and train() do not touch it
    (also mid accumulation window, and for a parameter whose gradient was None)."""
    name, hyper = cfg
    params = make_params(np.random.default_rng(5), SHAPES, np.float32)
    opt = getattr(fastopt, name)(params, backend="numba", gradient_accumulation_steps=2, **hyper)
    before = [p.copy() for p in params]
    opt.eval()
    opt.train()
    g = _grads(6, 4, np.float32)
    opt.step(g[0])  # accumulates only
    opt.eval()
    for p, b in zip(params, before):
        assert _bits(p) == _bits(b)
    opt.train()
    for grads in g[1:]:  # two windows' updates (x = z after the first), none for the last parameter
        opt.step([*grads[:3], None])
    y = params[0].copy()
    opt.eval()
    assert not np.array_equal(params[0], y)
    np.testing.assert_array_equal(params[0], opt.state[0]["x"])
    assert _bits(params[3]) == _bits(before[3])
    opt.train()
    assert _bits(params[0]) == _bits(y) and _bits(params[3]) == _bits(before[3])


# ------------------------------------------------------------------------- schedule-free scalar state
@pytest.mark.parametrize("how", ["state_dict", "checkpoint"])
@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_max_lr_and_weight_sum_resume_bit_identical(cfg, how, tmp_path):
    """max_lr and weight_sum follow the lr history (a decaying schedule, then a manual edit): a resumed
    optimizer must restore them, not derive them from the step, to continue bit for bit."""
    name, hyper = cfg
    hyper = dict(hyper, lr=schedules.ExponentialDecay(hyper["lr"], 2, 0.5))
    params = make_params(np.random.default_rng(7), SHAPES, np.float64)
    seq = _grads(8, 14)
    opt = getattr(fastopt, name)(params, backend="numba", **hyper)
    for g in seq[:5]:
        opt.step(g)
    opt.param_groups[0]["lr"] = 0.001  # below the schedule's max: max_lr keeps the history's maximum
    for g in seq[5:7]:
        opt.step(g)
    sd = opt.state_dict()
    entry = sd["state"][1]
    assert type(entry["max_lr"]) is float and type(entry["weight_sum"]) is float
    assert entry["max_lr"] > 0.001 and entry["weight_sum"] > 7 * 0.001 ** 2
    resumed_params = [p.copy() for p in params]
    resumed = getattr(fastopt, name)(resumed_params, backend="numba")  # defaults: all from the checkpoint
    if how == "checkpoint":
        fastopt.save(tmp_path / "sf.ckpt", opt, params)
        fastopt.load(tmp_path / "sf.ckpt", resumed, resumed_params)
    else:
        resumed.load_state_dict(pickle.loads(pickle.dumps(sd)))
    assert [s["weight_sum"] for s in resumed.state] == [s["weight_sum"] for s in opt.state]
    for g in seq[7:]:
        opt.step(g)
        resumed.step(g)
    for p, q in zip(params, resumed_params):
        assert _bits(p) == _bits(q)
    # the scalars matter: the same arrays and steps with the values a constant lr of 0.001 gives run apart
    stripped = copy.deepcopy(sd)
    for e in stripped["state"].values():
        e["max_lr"], e["weight_sum"] = 0.001, 7 * 0.001 ** 2
    runs = []
    for state_dict in (sd, stripped):
        q = make_params(np.random.default_rng(12), SHAPES, np.float64)
        o = getattr(fastopt, name)(q, backend="numba")
        o.load_state_dict(state_dict)
        o.step(seq[0])
        runs.append(q)
    assert not np.array_equal(runs[0][0], runs[1][0])


@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_eval_mode_state_dict_restores_the_mode(cfg):
    name, hyper = cfg
    opt, params = _run(name, hyper, steps=4)
    y = [p.copy() for p in params]
    opt.eval()
    sd = opt.state_dict()
    assert sd["fastopt"]["training"] is False
    x = [p.copy() for p in params]  # what a model checkpoint taken now holds
    fresh = getattr(fastopt, name)(x, backend="numba", **hyper)
    fresh.load_state_dict(sd)
    assert fresh.training is False
    with pytest.raises(RuntimeError, match="eval mode"):
        fresh.step(_grads(9, 1)[0])
    fresh.train()
    for p, a in zip(x, y):
        assert _bits(p) == _bits(a)


@pytest.mark.parametrize("cfg", SF, ids=_ids)
def test_merged_call_with_different_histories(cfg):
    """Views of one buffer step in one kernel call; parameters whose lr histories differ (one skipped a step
    while the lr was edited) get their own averaging weights within it, as separate arrays do."""
    name, hyper = cfg
    arrays = make_params(np.random.default_rng(10), SHAPES, np.float64)
    _, views = fastopt.flatten(arrays)
    separate = [a.copy() for a in arrays]
    gflat, gviews = fastopt.flatten([np.zeros(s) for s in SHAPES])
    merged = getattr(fastopt, name)(views, backend="numba", **hyper)
    alone = [getattr(fastopt, name)([a], backend="numba", **hyper) for a in separate]
    seq = _grads(11, 6)
    skip = [[None, 0, 0, 0], [0, None, None, None]]  # call 1: param 0 skips; call 2, lr halved: the others
    for k, grads in enumerate(seq):
        if k == 1:
            merged.param_groups[0]["lr"] = hyper["lr"] / 2
            for o in alone:
                o.param_groups[0]["lr"] = hyper["lr"] / 2
        for gv, g in zip(gviews, grads):
            gv[...] = g
        mask = skip[k] if k < 2 else [0, 0, 0, 0]
        merged.step([None if m is None else gv for m, gv in zip(mask, gviews)])
        for o, m, g in zip(alone, mask, grads):
            if m is not None:
                o.step([g])
    assert len(merged._plan.calls) == 1
    assert merged.state[0]["weight_sum"] != merged.state[1]["weight_sum"]
    for i, (v, s, o) in enumerate(zip(views, separate, alone)):
        assert _bits(v) == _bits(s)
        assert (merged.state[i]["max_lr"], merged.state[i]["weight_sum"]) == (o.state[0]["max_lr"],
                                                                               o.state[0]["weight_sum"])


@pytest.mark.parametrize("edit, exc, match", [
    (lambda e: e.pop("max_lr"), ValueError, r"state 0 lacks \['max_lr'\]"),
    (lambda e: [e.pop("max_lr"), e.pop("weight_sum")], ValueError, r"state 0 lacks \['max_lr', 'weight_sum'\]"),
    (lambda e: e.update(weight_sum=-1.0), ValueError, r"state 0 'weight_sum'.*>= 0"),
    (lambda e: e.update(max_lr="0.1"), TypeError, r"state 0 'max_lr' must be a real number"),
    (lambda e: e.update(max_lr=math.nan), ValueError, r"state 0 'max_lr' is NaN"),
], ids=["no-max_lr", "neither", "negative", "string", "nan"])
def test_bad_scalar_state_raises_before_anything_changes(edit, exc, match):
    opt, _ = _run(*SF[0], steps=3)
    target, _ = _run(*SF[0], steps=2, seed=4)
    target.eval()
    sd = opt.state_dict()
    edit(sd["state"][0])
    before = snapshot(target)
    with pytest.raises(exc, match=match):
        target.load_state_dict(sd)
    assert snapshot(target) == before
    sd = opt.state_dict()
    sd["fastopt"]["training"] = "no"
    with pytest.raises(TypeError, match="training must be a bool"):
        target.load_state_dict(sd)
    assert snapshot(target) == before


def test_scalar_state_of_a_0d_array_loads():
    """torch-style state dicts keep scalars as 0-d tensors."""
    opt, params = _run(*SF[1], steps=3)
    sd = opt.state_dict()
    for e in sd["state"].values():
        e["max_lr"], e["weight_sum"] = np.array(e["max_lr"]), np.array(e["weight_sum"])
    other = fastopt.ScheduleFreeSGD([p.copy() for p in params], backend="numba")
    other.load_state_dict(sd)
    assert [s["weight_sum"] for s in other.state] == [s["weight_sum"] for s in opt.state]


# --------------------------------------------------------------------------------------- validation
BAD = [
    ("Ftrl", dict(lr=0.0), ValueError, r"learning rate \(.*lr\).*must be > 0"),
    ("Ftrl", dict(learning_rate_power=0.5), ValueError, r"learning_rate_power.*must be <= 0"),
    ("Ftrl", dict(initial_accumulator_value=-0.1), ValueError, r"initial_accumulator_value.*>= 0"),
    ("Ftrl", dict(l1=-1e-3), ValueError, r"l1 .*>= 0"),
    ("Ftrl", dict(l2=-1e-3), ValueError, r"l2 .*>= 0"),
    ("Ftrl", dict(l2_shrinkage=-1.0), ValueError, r"l2_shrinkage.*>= 0"),
    ("Ftrl", dict(beta=math.nan), ValueError, r"beta .* is NaN"),
    ("Lion", dict(betas=(0.0, 0.99)), ValueError, r"betas\[0\].*must be > 0"),
    ("Lion", dict(betas=(1.01, 0.99)), ValueError, r"betas\[0\].*must be <= 1"),
    ("Lion", dict(betas=0.9), TypeError, r"betas must be a pair"),
    ("Lion", dict(weight_decay=-0.1), ValueError, r"weight_decay.*>= 0"),
    ("Yogi", dict(eps_root=-1.0), ValueError, r"eps_root.*>= 0"),
    ("Yogi", dict(initial_accumulator_value=-1e-6), ValueError, r"initial_accumulator_value.*>= 0"),
    ("Yogi", dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\].*< 1"),
    ("AdaBelief", dict(nesterov=1), TypeError, r"nesterov.*must be a bool"),
    ("AdaBelief", dict(eps=-1e-16), ValueError, r"epsilon value.*>= 0"),
    ("Adan", dict(betas=(0.98, 0.92)), TypeError, r"betas must be a triple"),
    ("Adan", dict(betas=(0.98, 0.92, 1.0)), ValueError, r"betas\[2\].*< 1"),
    ("Adan", dict(weight_decay=-1.0), ValueError, r"weight_decay.*>= 0"),
    ("ScheduleFreeAdamW", dict(warmup_steps=-1), ValueError, r"warmup_steps.*>= 0"),
    ("ScheduleFreeAdamW", dict(warmup_steps=2.5), TypeError, r"warmup_steps.*whole number"),
    ("ScheduleFreeAdamW", dict(weight_lr_power=-1.0), ValueError, r"weight_lr_power.*>= 0"),
    ("ScheduleFreeSGD", dict(b1=1.0), ValueError, r"b1 .*< 1"),
    ("ScheduleFreeSGD", dict(lr=-1.0), ValueError, r"learning rate.*>= 0"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: f"{c[0]}-{c[1]}" if isinstance(c, tuple) else None)
def test_bad_hyperparameters(case):
    name, bad, exc, match = case
    p = np.ones(4)
    with pytest.raises(exc, match=match):
        getattr(fastopt, name)([p], **bad)
    opt = getattr(fastopt, name)([p])
    opt.step([np.ones(4)])
    opt.param_groups[0].update(bad)
    before = p.copy()
    with pytest.raises(exc, match=match) as info:
        opt.step([np.ones(4)])
    assert "param_groups[0]" in str(info.value)
    np.testing.assert_array_equal(p, before)
    assert opt._steps == [1]


def test_ftrl_schedule_reaching_zero_raises_before_any_write():
    p = np.ones(5)
    opt = fastopt.Ftrl([p], lr=schedules.PolynomialDecay(0.1, 2, end_learning_rate=0.0))
    opt.step([np.ones(5)])
    opt.step([np.ones(5)])
    before = p.copy()
    with pytest.raises(ValueError, match="Ftrl needs a learning rate > 0"):
        opt.step([np.ones(5)])
    np.testing.assert_array_equal(p, before)
    assert opt._steps == [2]


def test_defaults_are_the_references():
    """Every default of a class is the reference's (which tests/test_reference_keras_optax.py pins against
    Keras's and optax's signatures)."""
    import inspect
    for name in FAMILY:
        mine = inspect.signature(getattr(fastopt, name)).parameters
        for key, param in inspect.signature(reference.STEPS[name]).parameters.items():
            if param.default is not inspect.Parameter.empty:
                assert mine[key].default == param.default, (name, key)
        assert getattr(fastopt, name).state_names == reference.STATE_NAMES[name]
        assert getattr(fastopt, name).scalar_state_names == reference.SCALAR_STATE_NAMES.get(name, ())


# ------------------------------------------------------------------------------- the libraries themselves
def _fastopt_run(name, hyper, params, grads_seq, dtype):
    mine = [p.astype(dtype) for p in params]
    opt = getattr(fastopt, name)(mine, backend="numba", **hyper)
    for grads in grads_seq:
        opt.step([g.astype(dtype) for g in grads])
    return mine, opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", [c for c in KERAS_CONFIGS if c[0] in FAMILY], ids=_ids)
def test_matches_keras(keras, config, dtype):
    name, hyper = config
    params, grads_seq = _data(100 + KERAS_CONFIGS.index(config), _shapes(name))
    expected, kopt = keras_run(keras, name, hyper, params, grads_seq, dtype)
    mine, opt = _fastopt_run(name, hyper, params, grads_seq, dtype)
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, err_msg=f"{name} param {i}")
    for key, attr in KERAS_STATE[name].items():
        for i, (state, var) in enumerate(zip(opt.state, getattr(kopt, attr))):
            assert_close(state[key], keras.ops.convert_to_numpy(var), dtype, err_msg=f"{key} {i}")
    assert all(s["step"] == NSTEPS for s in opt.state)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", [c for c in OPTAX_CONFIGS if c[0] in FAMILY], ids=_ids)
def test_matches_optax(config, dtype):
    name, hyper = config
    index = OPTAX_CONFIGS.index(config)
    expected, expected_state = optax_results(name)[(index, dtype)]
    params, grads_seq = _data(200 + index, _shapes(name))
    mine, opt = _fastopt_run(name, hyper, params, grads_seq, dtype)
    for i, (a, e) in enumerate(zip(mine, expected)):
        assert a.dtype == dtype
        assert_close(a, e, dtype, err_msg=f"{name} param {i}")
    if name.startswith("ScheduleFree"):
        opt.eval()  # x into the parameters: optax's schedule_free_eval_params
        for i, (a, e) in enumerate(zip(mine, expected_state["x"])):
            assert_close(a, e, dtype, err_msg=f"x {i}")
        opt.train()
    for key, value in expected_state.items():
        if isinstance(value, list):
            for i, (state, e) in enumerate(zip(opt.state, value)):
                assert_close(state[key], e, dtype, err_msg=f"{key} {i}")
        else:  # schedule-free's scalars
            for state in opt.state:
                assert math.isclose(state[key], float(value), rel_tol=1e-12 if dtype is np.float64 else 1e-6)


@pytest.mark.parametrize("name", FAMILY)
def test_step_takes_no_page_faults(name):
    """Nothing is allocated per step (schedule-free's per-call scalar bookkeeping included)."""
    from tests.test_no_allocation import N, faults
    p = np.zeros(N, np.float32)
    g = np.full(N, 0.5, np.float32)
    opt = getattr(fastopt, name)(p, backend="numba")
    opt.step(g)
    opt.step(g)
    assert faults(lambda: opt.step(g)) < 1
