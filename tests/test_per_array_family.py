"""Lamb, LARS and Adafactor beyond the generic tests: statistics per array (also for the views of one
flatten() buffer), sums that do not depend on the threads, the shapes of Adafactor's factored state
in both conventions, Keras's spellings, no allocation per step, and parity with torch.optim, Keras 3
(torch backend, floatx float64) and optax (jax x64) where they are installed."""
from __future__ import annotations

import os

import numpy as np
import pytest

import fastopt
from fastopt import reference
from tests import registry_per_array
from tests.conftest import config_id, make_params, mixed_grads, require_backend, tolerance

CONFIGS = registry_per_array.CONFIGS
#: above the parallel threshold (65536); the matrix is split in two row blocks by the reductions
BIG = [(100_003,), (512, 300)]


@pytest.fixture(autouse=True)
def _numba():
    require_backend("numba")


def grads_for(rng, shapes, dtype):
    return [np.asarray(g) for g in mixed_grads(rng, shapes, dtype)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_flatten_views_keep_their_own_statistics(cfg):
    """The views of one flatten() buffer step one by one, each with its own trust ratio, RMS and
    factors: the result is the reference's, array by array; ONE flat array gets one ratio."""
    name, hyper = cfg
    rng = np.random.default_rng(0)
    shapes = [(30, 7), (7,), (4, 5, 2), (), (1,)]
    arrays = make_params(rng, shapes, np.float64)
    flat, views = fastopt.flatten(arrays)
    whole = flat.copy()
    refs = [np.array(a, dtype=np.float64) for a in arrays]
    gflat, gviews = fastopt.flatten([np.zeros(s) for s in shapes])
    opt = getattr(fastopt, name)(views, **hyper)
    one = getattr(fastopt, name)(whole, **hyper)
    ref = reference.Reference(name, refs, **hyper)
    ref_whole = reference.Reference(name, [flat.copy()], **hyper)
    for _ in range(12):
        grads = grads_for(rng, shapes, np.float64)
        for gv, g in zip(gviews, grads):
            gv[...] = g
        opt.step(gviews)
        one.step(gflat.copy())
        ref.step(grads)
        ref_whole.step([gflat.copy()])
    assert len(opt._plan.calls) == len(shapes)
    for v, r in zip(views, refs):
        np.testing.assert_allclose(v, r, **tolerance(np.float64))
    for mine, theirs in zip(opt.state, ref.state):
        for key, value in theirs.items():
            if key != "step" and value is not None:
                assert mine[key].shape == value.shape, key
                np.testing.assert_allclose(mine[key], value, **tolerance(np.float64), err_msg=key)
    np.testing.assert_allclose(whole, ref_whole.params[0], **tolerance(np.float64))
    assert not np.allclose(whole, flat, rtol=1e-6), "one buffer, one statistic: not the per-array result"


@pytest.mark.parametrize("cfg", registry_per_array.REPRESENTATIVE + [CONFIGS[5], CONFIGS[11]], ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, dict(gradient_accumulation_steps=2, use_ema=True)], ids=["plain", "options"])
def test_results_do_not_depend_on_threads(cfg, dtype, options):
    """1 thread (the serial kernels) and 2 (the parallel ones, fixed chunks and row blocks): the
    same bits in the parameters and every state array."""
    name, hyper = cfg
    out = []
    for threads in (1, 2):
        fastopt.set_num_threads(threads)
        try:
            rng = np.random.default_rng(4)
            params = make_params(rng, BIG, dtype)
            opt = getattr(fastopt, name)(params, global_clipnorm=50.0, **hyper, **options)
            for _ in range(4):
                opt.step(grads_for(rng, BIG, dtype))
        finally:
            fastopt.set_num_threads(2)
        out.append((params, opt.state))
    (p1, s1), (p2, s2) = out
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    for x, y in zip(s1, s2):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("convention", ["torch", "keras"])
def test_adafactor_state_shapes(convention):
    shapes = [(3, 4), (2, 3, 5), (6,), (), (4, 1)]
    params = make_params(np.random.default_rng(1), shapes, np.float32)
    opt = fastopt.Adafactor(params, convention=convention)
    opt.step(grads_for(np.random.default_rng(2), shapes, np.float32))
    keep = (1,) if convention == "torch" else ()
    r, c, v = ("row_var", "col_var", "variance") if convention == "torch" else ("r", "c", "v")
    for s, st in zip(shapes, opt.state):
        if len(s) >= 2:
            assert set(st) == {"step", r, c}
            assert st[r].shape == s[:-1] + keep and st[c].shape == s[:-2] + keep + s[-1:]
        else:
            assert set(st) == {"step", v} and st[v].shape == s
    sd = opt.state_dict()
    assert sd["state"][1][r].shape == shapes[1][:-1] + keep
    # a state of the wrong shape is refused before anything changes
    sd["state"][0][r] = np.zeros(7, np.float32)
    with pytest.raises(ValueError, match=rf"state 0 '{r}' has shape \(7,\)"):
        fastopt.Adafactor([p.copy() for p in params], convention=convention).load_state_dict(sd)


def test_keras_convention_takes_keras_defaults_and_spellings():
    p = np.ones((3, 4))
    keras_like = fastopt.Adafactor([p], convention="keras")
    g = keras_like.param_groups[0]
    assert g["lr"] == 1e-3 and g["eps"] == (1e-30, 1e-3) and g["d"] == 1.0 and g["beta2_decay"] == -0.8
    assert fastopt.Adafactor([p]).param_groups[0]["lr"] == 1e-2
    aliased = fastopt.Adafactor([p.copy()], convention="keras", beta_2_decay=-0.5, epsilon_1=1e-20, epsilon_2=1e-2,
                                clip_threshold=0.5)
    named = fastopt.Adafactor([p.copy()], convention="keras", beta2_decay=-0.5, eps=(1e-20, 1e-2), d=0.5)
    assert dict(aliased.param_groups[0], params=None) == dict(named.param_groups[0], params=None)
    with pytest.raises(TypeError, match=r"convention='keras' only"):
        fastopt.Adafactor([p], clip_threshold=2.0)
    with pytest.raises(TypeError, match=r"both d and clip_threshold"):
        fastopt.Adafactor([p], convention="keras", d=2.0, clip_threshold=2.0)
    with pytest.raises(TypeError, match=r"both eps and epsilon_1"):
        fastopt.Adafactor([p], convention="keras", eps=(1e-30, 1e-3), epsilon_1=1e-20)


def test_adafactor_relative_step_has_no_effect():
    """As in Keras 3: the step size is min(lr, 1/sqrt(t)) whatever relative_step says."""
    rng = np.random.default_rng(3)
    shapes = [(4, 6), (5,)]
    a, b = make_params(rng, shapes, np.float64), None
    b = [x.copy() for x in a]
    opt_a = fastopt.Adafactor(a, convention="keras", lr=2.0, relative_step=True)
    opt_b = fastopt.Adafactor(b, convention="keras", lr=2.0, relative_step=False)
    for _ in range(5):
        grads = grads_for(rng, shapes, np.float64)
        opt_a.step(grads)
        opt_b.step(grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


BAD = [
    ("Lamb", dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    ("Lamb", dict(eps=-1.0), ValueError, r"eps\).*>= 0"),
    ("Lamb", dict(weight_decay=-0.1), ValueError, r"weight_decay.*>= 0"),
    ("LARS", dict(momentum=-0.5), ValueError, r"momentum.*>= 0"),
    ("LARS", dict(trust_coefficient=float("nan")), ValueError, r"trust_coefficient.* is NaN"),
    ("LARS", dict(nesterov=1), TypeError, r"nesterov.*must be a bool"),
    ("Adafactor", dict(beta2_decay=0.5), ValueError, r"beta2_decay.*<= 0"),
    ("Adafactor", dict(eps=1e-3), TypeError, r"eps must be a pair"),
    ("Adafactor", dict(eps=(-1.0, 1e-3)), ValueError, r"epsilon1.*>= 0"),
    ("Adafactor", dict(eps=(None, -1e-3)), ValueError, r"epsilon2.*>= 0"),
    ("Adafactor", dict(d=0.5), ValueError, r"clipping threshold d.*>= 1"),
    ("Adafactor", dict(d=0.0, convention="keras"), ValueError, r"clipping threshold d.*> 0"),
    ("Adafactor", dict(convention="tf"), ValueError, r"convention must be 'torch' or 'keras'"),
    ("Adafactor", dict(relative_step="no", convention="keras"), TypeError, r"relative_step.*must be a bool"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: f"{c[0]}-{c[1]}")
def test_bad_hyperparameters_raise_before_anything_changes(case):
    name, hyper, exc, match = case
    p = np.ones((3, 4))
    with pytest.raises(exc, match=match):
        getattr(fastopt, name)([p], **hyper)
    opt = getattr(fastopt, name)([p], **{k: v for k, v in hyper.items() if k == "convention" and v == "keras"})
    opt.step([np.ones((3, 4))])
    before = (p.copy(), [b.copy() for b in opt._buffers], list(opt._steps))
    opt.param_groups[0].update(hyper)
    with pytest.raises(exc, match=match):
        opt.step([np.ones((3, 4))])
    np.testing.assert_array_equal(p, before[0])
    assert len(opt._buffers) == len(before[1]) and opt._steps == before[2]
    for b, saved in zip(opt._buffers, before[1]):
        np.testing.assert_array_equal(b, saved)


@pytest.mark.parametrize("cfg", registry_per_array.REPRESENTATIVE, ids=config_id)
@pytest.mark.parametrize("clip", [{}, dict(global_clipnorm=1.0)], ids=["noclip", "global_clipnorm"])
def test_accumulation_updates_with_the_clipped_mean(cfg, clip):
    """k = 3: every third call updates with the mean of the window (clipped as Keras clips it), on
    the fused path (the first pass forms the sum, the later ones read it) and the summed one."""
    name, hyper = cfg
    rng = np.random.default_rng(5)
    shapes = [(70_001,), (9, 4), ()]
    params = make_params(rng, shapes, np.float64)
    refs = [p.copy() for p in params]
    opt = getattr(fastopt, name)(params, gradient_accumulation_steps=3, **clip, **hyper)
    ref = reference.Reference(name, refs, **clip, **hyper)
    window = []
    for _ in range(9):
        grads = grads_for(rng, shapes, np.float64)
        opt.step(grads)
        window.append(grads)
        if len(window) == 3:
            ref.step([sum(gs) / 3 for gs in zip(*window)])
            window = []
    for p, r in zip(params, refs):
        np.testing.assert_allclose(p, r, rtol=1e-11, atol=1e-13)
    assert all(not s["accumulated_grad"].any() for s in opt.state)


@pytest.mark.parametrize("name,hyper", [("Lamb", {}), ("LARS", {}), ("Adafactor", {}),
                                        ("Adafactor", dict(convention="keras"))])
def test_a_step_takes_no_page_faults(name, hyper):
    resource = pytest.importorskip("resource")
    rng = np.random.default_rng(6)
    shapes = [(2048, 1024), (1 << 21,)]
    params = make_params(rng, shapes, np.float32)
    grads = grads_for(rng, shapes, np.float32)
    opt = getattr(fastopt, name)(params, **hyper)
    opt.step(grads)
    opt.step(grads)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        opt.step(grads)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5 < 1


# ------------------------------------------------------------------------- the real libraries

PARITY_SHAPES = [(7,), (3, 5), (2, 3, 4), (), (600, 250), (4, 1)]


@pytest.mark.parametrize("hyper", [{}, dict(lr=0.05, weight_decay=0.1, maximize=True),
                                   dict(lr=0.1, beta2_decay=-0.5, eps=(1e-3, 1e-2), d=1.5)], ids=str)
def test_adafactor_matches_torch(hyper):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    params = make_params(rng, PARITY_SHAPES, np.float64)
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    topt = torch.optim.Adafactor(tparams, foreach=False, **hyper)
    opt = fastopt.Adafactor(params, **hyper)
    for _ in range(20):
        grads = grads_for(rng, PARITY_SHAPES, np.float64)
        for tp, g in zip(tparams, grads):
            tp.grad = torch.tensor(g)
        topt.step()
        opt.step(grads)
    for p, tp, st in zip(params, tparams, opt.state):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
        for key, value in topt.state[tp].items():
            if key != "step":
                np.testing.assert_allclose(st[key], value.numpy(), rtol=1e-12, atol=1e-300, err_msg=key)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the Keras parity tests run Keras on its torch backend")
    return keras


@pytest.mark.parametrize("name,hyper,kw", [
    ("Lamb", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
     dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.05)),
    ("Adafactor", dict(convention="keras"), dict()),
    ("Adafactor", dict(convention="keras", lr=0.05, beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=0.5,
                       weight_decay=0.1),
     dict(learning_rate=0.05, beta_2_decay=-0.5, epsilon_2=1e-2, clip_threshold=0.5, weight_decay=0.1)),
], ids=["lamb", "adafactor", "adafactor-options"])
def test_matches_keras(keras, name, hyper, kw):
    """Keras 3 with floatx float64. Keras on torch computes Adafactor's means, RMS and clamps in float32
    even for float64 variables (see fastopt.reference.keras_family): 1e-6 there, 1e-12 for Lamb."""
    keras.config.set_floatx("float64")
    try:
        rng = np.random.default_rng(8)
        shapes = PARITY_SHAPES if name == "Adafactor" else [(7,), (3, 5), (600, 250)]
        params = make_params(rng, shapes, np.float64)
        kvars = [keras.Variable(p.copy(), dtype="float64") for p in params]
        kopt = getattr(keras.optimizers, name)(**kw)
        opt = getattr(fastopt, name)(params, **hyper)
        for _ in range(20):
            grads = grads_for(rng, shapes, np.float64)
            kopt.apply([keras.ops.convert_to_tensor(g) for g in grads], kvars)
            opt.step(grads)
        rtol = 1e-6 if name == "Adafactor" else 1e-12
        for p, v in zip(params, kvars):
            e = keras.ops.convert_to_numpy(v)
            np.testing.assert_allclose(p, e, rtol=rtol, atol=rtol * 1e-2 * np.abs(e).max(initial=1.0))
    finally:
        keras.config.set_floatx("float32")


@pytest.mark.parametrize("hyper", [dict(lr=0.1), dict(lr=0.1, weight_decay=1e-3, trust_coefficient=0.02, momentum=0.8,
                                                      nesterov=True), dict(lr=0.05, momentum=0.0, eps=1e-3)], ids=str)
def test_lars_matches_optax(hyper):
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(9)
    shapes = [(7,), (3, 5), (600, 250), ()]
    params = make_params(rng, shapes, np.float64)
    kw = {("learning_rate" if k == "lr" else k): v for k, v in hyper.items()}
    tx = optax.lars(**kw)
    jparams = [jax.numpy.asarray(p) for p in params]
    state = tx.init(jparams)
    opt = fastopt.LARS(params, **hyper)
    for _ in range(20):
        grads = grads_for(rng, shapes, np.float64)
        updates, state = tx.update([jax.numpy.asarray(g) for g in grads], state, jparams)
        jparams = optax.apply_updates(jparams, updates)
        opt.step(grads)
    for p, e in zip(params, jparams):
        np.testing.assert_allclose(p, np.asarray(e), rtol=1e-12, atol=1e-14)
