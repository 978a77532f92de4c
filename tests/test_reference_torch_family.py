"""Pins the NumPy oracle's remaining torch.optim rules (Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor)
against torch.optim's single-tensor implementation (``foreach=False``).

Tolerances, and why:
- float64: rtol=1e-12, atol=1e-14 after 60 steps, with torch's default dtype set to float64 for the run. torch
  keeps ``step``, NAdam's ``mu_product`` and ASGD's ``eta``/``mu`` as 0-d tensors of the DEFAULT dtype: under
  the usual float32 default it rounds those scalars to float32 every step, even for float64 parameters, which
  the oracle (double scalars, as fastopt's kernels) does not; ``test_float64_params_under_float32_default``
  pins how far apart that leaves them (~1e-6 relative after 60 steps). The rest is rounding: FMA contractions
  inside torch's lerp/add kernels, summation order in Adafactor's norms. Measured worst cases: 4.5e-14
  (Adafactor), 1e-14 (RAdam), below 5e-15 for the others, Rprop bit for bit.
- float32: rtol=1e-5, atol=1e-5 * max|expected| per array (as tests/test_reference.py): both sides compute in
  float32, and moving averages of gradients spanning six decades make an entry's error relative to the array's
  scale (measured worst: 3.2e-7 of the array maximum, Adadelta). Scalar state: rtol=1e-5 (torch rounds it to
  float32 each step; 60 roundings of 6e-8), and atol=1e-37 (with betas[0] = 0.3, torch's float32 mu_product
  underflows to 0 after ~50 steps).
"""
import contextlib

import numpy as np
import pytest

from fastopt import reference as ref
from tests.conftest import make_params, mixed_grads

torch = pytest.importorskip("torch")

NSTEPS = 60
SHAPES = [(7,), (3, 5), (1,), ()]
ADAFACTOR_SHAPES = [(7,), (5, 6), (3, 4, 5), (1, 9), ()]

# (torch class name, hyperparameters): defaults first, then every option off its default
CONFIGS = [
    ("Adadelta", {}),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2)),
    ("Adadelta", dict(lr=2.0, rho=0.3, maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), maximize=True)),  # 1 - beta1 >= 0.5: lerp's other branch
    ("NAdam", {}),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=1e-2)),
    ("NAdam", dict(lr=0.005, betas=(0.3, 0.95), maximize=True, weight_decay=1e-3)),
    ("RAdam", {}),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.005, betas=(0.4, 0.9), maximize=True)),  # rho_inf = 19: rectified from step 5
    ("RAdam", dict(lr=0.005, betas=(0.9, 0.5))),  # rho_inf = 3: never rectified
    ("Rprop", {}),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.1))),
    ("Rprop", dict(lr=1e-3, etas=(0.6, 1.1), maximize=True)),
    ("ASGD", {}),
    ("ASGD", dict(lr=0.02, lambd=1e-3, alpha=0.6, t0=10, weight_decay=1e-2)),  # averaging from step 12
    ("ASGD", dict(lr=0.05, lambd=0.0, t0=30, maximize=True)),
    ("Adafactor", {}),
    ("Adafactor", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adafactor", dict(lr=1.0, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0)),  # rho = 1/sqrt(t) throughout
    ("Adafactor", dict(lr=0.1, eps=(1e-3, 1e-3), weight_decay=1e-2)),  # an eps1 that bites
]
NAMES = sorted({c[0] for c in CONFIGS})
SCALARS = {"mu_product", "eta", "mu"}


def _ids(c):
    return c[0] + "-" + ("-".join(f"{k}={v}" for k, v in c[1].items()) or "defaults")


@contextlib.contextmanager
def default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def assert_close(actual, expected, dtype, err_msg=""):
    if dtype is np.float64:
        tol = dict(rtol=1e-12, atol=1e-14)
    else:
        tol = dict(rtol=1e-5, atol=1e-5 * float(np.nanmax(np.abs(expected), initial=0.0)))
    assert np.shape(actual) == np.shape(expected), err_msg
    np.testing.assert_allclose(actual, expected, **tol, err_msg=err_msg, equal_nan=True)


def run_pair(name, hyper, dtype, torch_dtype, *, nsteps=NSTEPS, seed=1234, poison=None, grad_fn=None,
             torch_hyper=None):
    """Step the oracle and torch.optim (``foreach=False``) on identical data; return (params, states, tparams, topt).

    ``poison=(step, array index)`` puts a NaN into one gradient entry on that step; ``grad_fn(g, p)`` maps the
    gradient torch receives (the oracle gets the raw gradient), ``torch_hyper`` replaces torch's hyperparameters."""
    shapes = ADAFACTOR_SHAPES if name == "Adafactor" else SHAPES
    rng = np.random.default_rng(seed)
    params = [np.asarray(p) for p in make_params(rng, shapes, dtype)]
    states = [{} for _ in params]
    with default_dtype(torch_dtype):
        tparams = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params]
        topt = getattr(torch.optim, name)(tparams, foreach=False, **(hyper if torch_hyper is None else torch_hyper))
        for k in range(nsteps):
            grads = [np.array(g, dtype=dtype) for g in mixed_grads(rng, shapes, dtype)]
            if poison is not None and k == poison[0]:
                grads[poison[1]].reshape(-1)[0] = np.nan
            for tp, g in zip(tparams, grads):
                tg = g if grad_fn is None else grad_fn(g, tp.detach().numpy())
                tp.grad = torch.from_numpy(np.array(tg, dtype=dtype))
            topt.step()
            for p, g, st in zip(params, grads, states):
                g_before = g.copy()
                ref.STEPS[name](p, g, st, **hyper)
                np.testing.assert_array_equal(g, g_before)  # the oracle never writes the gradient
    return params, states, tparams, topt


def assert_match(params, states, tparams, topt, dtype, nsteps=NSTEPS, scalar_rtol=None):
    for i, (p, tp, st) in enumerate(zip(params, tparams, states)):
        assert p.dtype == dtype and p.shape == tuple(tp.shape)
        assert_close(p, tp.detach().numpy(), dtype, err_msg=f"param {i}")
        tstate = topt.state[tp]
        assert list(st) and set(st) == set(tstate), (sorted(st), sorted(tstate))
        for key, tv in tstate.items():
            msg = f"param {i} {key}"
            if key == "step":
                assert type(st["step"]) is int and st["step"] == int(tv.item()) == nsteps, msg
            elif key in SCALARS:
                assert isinstance(st[key], float), msg
                rtol = scalar_rtol or (1e-13 if dtype is np.float64 else 1e-5)
                atol = 0 if dtype is np.float64 else 1e-37  # a float32 mu_product underflows to 0
                np.testing.assert_allclose(st[key], tv.item(), rtol=rtol, atol=atol, err_msg=msg)
            else:
                assert isinstance(st[key], np.ndarray) and st[key].dtype == dtype, msg
                assert_close(st[key], tv.numpy(), dtype, err_msg=msg)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
def test_steps_match_torch(config, dtype):
    name, hyper = config
    # float64 against torch with float64 scalar state; float32 against torch as users run it
    torch_dtype = torch.float64 if dtype is np.float64 else torch.float32
    assert_match(*run_pair(name, hyper, dtype, torch_dtype), dtype)


@pytest.mark.parametrize("name", ["NAdam", "ASGD"])
def test_float64_params_under_float32_default(name):
    """Under torch's default float32 dtype, torch rounds NAdam's mu_product and ASGD's eta/mu to float32 every
    step: float64 parameters then agree with the (double-scalar) oracle to ~1e-6 (ASGD, 60 steps), not to
    rounding."""
    hyper = {"NAdam": dict(lr=0.01), "ASGD": dict(lr=0.02, t0=10, lambd=1e-3)}[name]
    params, states, tparams, topt = run_pair(name, hyper, np.float64, torch.float32)
    for p, tp, st in zip(params, tparams, states):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-7)
        for key in ref.SCALAR_STATE_NAMES[name]:
            assert topt.state[tp][key].dtype == torch.float32
            np.testing.assert_allclose(st[key], topt.state[tp][key].item(), rtol=1e-5)
    # ... and the difference is real: the parameters are not identical to rounding
    assert any(not np.allclose(p, tp.detach().numpy(), rtol=1e-13, atol=0) for p, tp in zip(params, tparams))


@pytest.mark.parametrize("name", NAMES)
def test_nan_gradient_propagates_as_in_torch(name):
    """A NaN in one gradient entry spreads (or not) exactly as in torch: Rprop skips the entry (torch.sign(NaN)
    is 0), Adafactor's factored arrays turn whole matrices NaN, the others poison that entry only."""
    hyper = dict(CONFIGS[[c[0] for c in CONFIGS].index(name)][1])
    nsteps = 12
    with np.errstate(invalid="ignore"):
        for index in (0, 1):
            out = run_pair(name, hyper, np.float64, torch.float64, nsteps=nsteps, poison=(5, index))
            assert_match(*out, np.float64, nsteps=nsteps)


def test_rprop_weight_decay_extension():
    """fastopt's Rprop weight_decay (not a torch option) is torch's Rprop fed g + weight_decay * p."""
    wd = 0.3
    out = run_pair("Rprop", dict(lr=0.05, weight_decay=wd), np.float64, torch.float64,
                   grad_fn=lambda g, p: g + wd * p, torch_hyper=dict(lr=0.05))
    params, states, tparams, topt = out
    for p, tp, st in zip(params, tparams, states):
        np.testing.assert_array_equal(p, tp.detach().numpy())
        np.testing.assert_array_equal(st["prev"], topt.state[tp]["prev"].numpy())
        np.testing.assert_array_equal(st["step_size"], topt.state[tp]["step_size"].numpy())


def test_rprop_first_step_moves_by_lr_against_the_sign():
    p = np.array([1.0, 2.0, 3.0, 4.0])
    g = np.array([1e-9, -1e9, 0.0, -0.5])
    state = {}
    ref.rprop_step(p, g, state, lr=0.25)
    np.testing.assert_array_equal(p, [0.75, 2.25, 3.0, 4.25])
    np.testing.assert_array_equal(state["step_size"], [0.25] * 4)
    np.testing.assert_array_equal(state["prev"], g)
    # a sign change: step size times eta_minus, no move, prev forgets the gradient
    ref.rprop_step(p, -g, state, lr=0.25)
    np.testing.assert_array_equal(p, [0.75, 2.25, 3.0, 4.25])
    np.testing.assert_array_equal(state["step_size"], [0.125, 0.125, 0.25, 0.125])
    np.testing.assert_array_equal(state["prev"], [0.0, 0.0, 0.0, 0.0])


def test_adafactor_state_shapes():
    for shape, expected in [((7,), {"variance": (7,)}), ((), {"variance": ()}),
                            ((5, 6), {"row_var": (5, 1), "col_var": (1, 6)}),
                            ((3, 4, 5), {"row_var": (3, 4, 1), "col_var": (3, 1, 5)})]:
        state = {}
        ref.adafactor_step(np.ones(shape, np.float32), np.ones(shape, np.float32), state)
        assert {k: v.shape for k, v in state.items() if k != "step"} == expected
        assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")


def test_state_names_are_torchs_in_torchs_order():
    """STATE_NAMES / SCALAR_STATE_NAMES list torch's state keys in the order torch creates them, with every
    option that adds a buffer switched on."""
    full = {"SGD": dict(momentum=0.9), "Adam": dict(amsgrad=True), "AdamW": dict(amsgrad=True),
            "RMSprop": dict(momentum=0.9, centered=True), "Adagrad": {}}
    for name in ref.STEPS:
        assert name in ref.STATE_NAMES, name
        if not hasattr(torch.optim, name):  # the Keras and optax rules (and ':keras' variants)
            continue
        for shape in [(3,), (2, 3)]:
            tp = torch.nn.Parameter(torch.ones(shape, dtype=torch.float64))
            tp.grad = torch.ones(shape, dtype=torch.float64)
            topt = getattr(torch.optim, name)([tp], foreach=False, **full.get(name, {}))
            topt.step()
            keys = [k for k, v in topt.state[tp].items() if v is not None and k != "step"]
            expected = list(ref.SCALAR_STATE_NAMES.get(name, ())) + list(ref.STATE_NAMES[name])
            assert keys == [k for k in expected if k in keys], (name, keys)
            assert set(keys) <= set(expected)
            if name != "Adafactor":
                assert keys == expected, (name, keys)
            state = {}
            ref.STEPS[name](np.ones(shape), np.ones(shape), state, **full.get(name, {}))
            if name in NAMES:  # the oracle creates them in torch's order too
                assert [k for k in state if k != "step"] == keys, (name, list(state))
            else:
                assert set(state) - {"step"} == set(keys), (name, list(state))


def test_exports():
    for name in ["adadelta_step", "adamax_step", "nadam_step", "radam_step", "rprop_step", "asgd_step",
                 "adafactor_step", "STATE_NAMES", "SCALAR_STATE_NAMES"]:
        assert name in ref.__all__ and hasattr(ref, name)
