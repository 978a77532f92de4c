"""What the generic registry tests do not reach for Adadelta, Adamax, NAdam/Nadam, RAdam, Rprop and
ASGD: hyperparameter checks, Keras's defaults under convention="keras", the Nadam alias, the
running product behind NAdam's scalar state, Rprop's first step and bounds, ASGD's averages."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastopt
from fastopt import reference
from fastopt.optimizers.nadam import _RunningProduct
from tests import test_reference_keras_optax as kt
from tests.conftest import make_params, mixed_grads, require_backend
from tests.test_bad_input import assert_unchanged, snapshot

SHAPES = [(3, 4), (5,), (1,)]


@pytest.fixture(autouse=True)
def _numba():
    require_backend("numba")


def _run(name, hyper, steps=10, seed=0, shapes=SHAPES, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = make_params(rng, shapes, dtype)
    opt = getattr(fastopt, name)(params, backend="numba", **hyper)
    for _ in range(steps):
        opt.step(mixed_grads(rng, shapes, dtype))
    return opt, params


# (optimizer, key, bad value, exception, match): the message names the argument and the problem
BAD_HYPER = [
    ("Adadelta", "rho", 1.5, ValueError, r"rho value \(.*\).*1\.5.*<= 1"),
    ("Adadelta", "rho", -0.1, ValueError, r"rho value.*>= 0"),
    ("Adadelta", "eps", -1e-6, ValueError, r"epsilon value \(.*\beps\).*>= 0"),
    ("Adamax", "betas", (0.9, 1.0), ValueError, r"betas\[1\]\).*< 1"),
    ("Adamax", "lr", math.nan, ValueError, r"learning rate \(.*\blr\) is NaN"),
    ("NAdam", "momentum_decay", -1e-3, ValueError, r"momentum_decay value.*>= 0"),
    ("NAdam", "decoupled_weight_decay", 1, TypeError, r"decoupled_weight_decay.*must be a bool"),
    ("NAdam", "convention", "tf", ValueError, r"convention must be 'torch' or 'keras'"),
    ("RAdam", "weight_decay", -0.1, ValueError, r"weight_decay.*>= 0"),
    ("RAdam", "decoupled_weight_decay", "no", TypeError, r"decoupled_weight_decay.*must be a bool"),
    ("Rprop", "etas", (0.5, 0.9), ValueError, r"Invalid eta values: 0\.5, 0\.9"),
    ("Rprop", "etas", (0.0, 1.2), ValueError, r"Invalid eta values: 0\.0, 1\.2"),
    ("Rprop", "etas", 0.5, TypeError, r"etas .* must be a pair"),
    ("Rprop", "step_sizes", (1.0, 0.1), ValueError, r"step_sizes\[1\].*0\.1.*>= 1\.0"),
    ("Rprop", "step_sizes", (-1e-6, 50), ValueError, r"step_sizes\[0\].*>= 0"),
    ("ASGD", "lambd", -1e-4, ValueError, r"lambd value.*>= 0"),
    ("ASGD", "t0", math.nan, ValueError, r"t0 value.* is NaN"),
    ("ASGD", "alpha", "0.75", TypeError, r"alpha value.*must be a real number"),
]


@pytest.mark.parametrize("case", BAD_HYPER, ids=lambda c: f"{c[0]}-{c[1]}={c[2]!r}")
def test_bad_hyperparameter_raises_before_anything_changes(case):
    name, key, value, exc, match = case
    p = np.ones(4)
    with pytest.raises(exc, match=match):
        getattr(fastopt, name)([p], **{key: value})
    if key != "convention":  # at construction the convention is one argument, not a group's
        with pytest.raises(exc, match=match):
            getattr(fastopt, name)([{"params": [p], key: value}])
    # an edit of a trained optimizer's group raises at the next step, which then changes nothing
    # (snapshots around it: the state of NAdam and ASGD holds scalars computed from the group)
    opt, params = _run(name, {}, steps=2)
    before = snapshot(opt)
    good = opt.param_groups[0][key]
    opt.param_groups[0][key] = value
    with pytest.raises(exc, match=match):
        opt.step(mixed_grads(np.random.default_rng(1), SHAPES, np.float64))
    opt.param_groups[0][key] = good
    assert_unchanged(before, snapshot(opt))
    np.testing.assert_array_equal(p, 1.0)


def test_keras_convention_resolves_keras_defaults():
    torch_like = fastopt.NAdam([np.ones(3)])
    keras_like = fastopt.NAdam([np.ones(3)], convention="keras")
    alias = fastopt.Nadam([np.ones(3)])
    g = torch_like.param_groups[0]
    assert (g["lr"], g["eps"], g["momentum_decay"], g["convention"]) == (2e-3, 1e-8, 4e-3, "torch")
    for opt in (keras_like, alias):
        g = opt.param_groups[0]
        assert (g["lr"], g["eps"], g["momentum_decay"], g["convention"]) == (1e-3, 1e-7, 1.0, "keras")
        # concrete values, not the signature's sentinels: they print, compare and pickle plainly
        assert all(type(g[k]) is float for k in ("lr", "eps", "momentum_decay"))
    # given values win over either convention's defaults
    g = fastopt.Nadam([np.ones(3)], lr=0.05, eps=1e-3).param_groups[0]
    assert (g["lr"], g["eps"]) == (0.05, 1e-3)
    assert issubclass(fastopt.Nadam, fastopt.NAdam) and "Nadam" in fastopt.__all__


def test_nadam_alias_is_keras_nadam_bit_for_bit():
    hyper = dict(lr=0.01, weight_decay=0.05, betas=(0.8, 0.99))
    alias, p1 = _run("Nadam", hyper, steps=12)
    named, p2 = _run("NAdam", dict(hyper, convention="keras"), steps=12)
    rng = np.random.default_rng(0)
    p3 = make_params(rng, SHAPES, np.float64)
    ref = reference.Reference("NAdam", p3, convention="keras", **hyper)
    for _ in range(12):
        ref.step(mixed_grads(rng, SHAPES, np.float64))
    for a, b, r in zip(p1, p2, p3):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-14)
    # the scalar state is Keras's u_product (not torch's mu_product), in state and state_dict
    assert "u_product" in alias.state[0] and "mu_product" not in alias.state[0]
    assert alias.state_dict()["state"][0]["u_product"] == ref.state[0]["u_product"]
    assert "mu_product" in _run("NAdam", {}, steps=1)[0].state_dict()["state"][0]


@pytest.mark.parametrize("keras", [False, True])
def test_running_product_matches_the_sequential_product_in_any_order(keras):
    b1, psi = 0.95, (1.0 if keras else 4e-3)
    seq, p = [1.0], 1.0
    for t in range(1, 5000):
        p = p * b1 * (1.0 - 0.5 * 0.96 ** (t * psi)) if keras else p * (b1 * (1.0 - 0.5 * (0.96 ** (t * psi))))
        seq.append(p)
    prod = _RunningProduct(keras, b1, psi)
    for t in [0, 1, 2, 3000, 3001, 5, 2048, 2047, 4999, 1025, 1024, 0, 4999]:
        assert prod(t) == seq[t], t  # bit for bit, forward and back


def test_rprop_first_step_uses_the_lr_of_that_step():
    """torch creates step_size = lr on the first step: an lr edited before it counts; later the
    step sizes keep to their bounds whatever lr becomes."""
    p = np.array([1.0, 2.0, 3.0, 4.0])
    opt = fastopt.Rprop([p], lr=0.1, step_sizes=(0.01, 0.4))
    opt.param_groups[0]["lr"] = 0.25
    g = np.array([1e-9, -1e9, 0.0, -0.5])
    opt.step([g])
    np.testing.assert_array_equal(p, [0.75, 2.25, 3.0, 4.25])
    np.testing.assert_array_equal(opt.state[0]["step_size"], 0.25)
    for _ in range(8):  # the same sign each step: eta_plus until the upper bound
        opt.step([g])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.4, 0.4, 0.25, 0.4])
    for k in range(12):  # alternating signs: eta_minus (every other step) down to the lower bound
        opt.step([g if k % 2 else -g])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.01, 0.01, 0.25, 0.01])


def test_asgd_averaged_params_are_live_views_of_ax():
    opt, params = _run("ASGD", dict(lr=0.05, t0=4), steps=0)
    views = opt.averaged_params
    assert [v.shape for v in views] == [p.shape for p in params]
    rng = np.random.default_rng(3)
    for t in range(1, 12):
        opt.step(mixed_grads(rng, SHAPES, np.float64))
        for v, p, s in zip(views, params, opt.state):
            np.testing.assert_array_equal(v, s["ax"])  # the views follow every step
            if t <= 6:  # step t averages with mu after step t - 1: 1 until (t - 1) - t0 > 1
                np.testing.assert_array_equal(v, p)
            else:
                assert not np.array_equal(v, p)
        assert opt.state[0]["mu"] == 1 / max(1, t - 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", [c for c in kt.KERAS_CONFIGS if c[0] == "KerasNadam"], ids=lambda c: str(c[1]))
def test_nadam_matches_keras_nadam(config, dtype):
    """fastopt.Nadam (NAdam with convention="keras") against keras.optimizers.Nadam itself."""
    keras = pytest.importorskip("keras")
    _, hyper = config
    params, grads_seq = kt._data(100 + kt.KERAS_CONFIGS.index(config), kt._shapes("KerasNadam"))
    expected, kopt = kt.keras_run(keras, "KerasNadam", hyper, params, grads_seq, dtype)
    mine = [p.astype(dtype) for p in params]
    opt = fastopt.Nadam(mine, backend="numba", **hyper)
    for grads in grads_seq:
        opt.step([g.astype(dtype) for g in grads])
    for i, (a, e) in enumerate(zip(mine, expected)):
        kt.assert_close(a, e, dtype, err_msg=f"param {i}")
    for i, (state, var) in enumerate(zip(opt.state, kopt._momentums)):
        kt.assert_close(state["exp_avg"], keras.ops.convert_to_numpy(var), dtype, err_msg=f"exp_avg {i}")
