"""Training-loop options: fused weight EMA, gradient accumulation, skip_nonfinite, LossScaler.

Pinned against Keras 3 (EMA, accumulation; backend torch) and torch's GradScaler (the scale
sequence and skipped steps) where installed, and against the reference rules always.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

import fastopt
from fastopt import reference
from tests.conftest import REPRESENTATIVE, config_id, make_params, mixed_grads, tolerance

SHAPES = [(7,), (3, 5), (70_001,)]  # the last one runs the parallel path


def _ema_reference(name, hyper, params, grads_seq, momentum, k=None, overwrite=None):
    """Keras 3's loop in NumPy: accumulate (mean of k), update (its step counts updates), EMA every
    call with momentum 0 through the first window, overwrite by the update count."""
    ref = reference.Reference(name, params, **hyper)
    ema = [np.zeros_like(p) for p in params]
    acc = [np.zeros_like(p) for p in params]
    for it, grads in enumerate(grads_seq):
        if k and (it + 1) % k != 0:
            for a, g in zip(acc, grads):
                a += g
        else:
            if k:
                grads = [(g + a) / k for g, a in zip(grads, acc)]
                for a in acc:
                    a.fill(0)
            ref.step(grads)
        iterations = it // k if k else it  # Keras's ``iterations``: updates so far
        m = momentum if iterations > 0 else 0.0
        for e, p in zip(ema, params):
            e[...] = m * e + (1 - m) * p
        if overwrite and (iterations + 1) % overwrite == 0:
            for e, p in zip(ema, params):
                p[...] = e
    return ema


@pytest.mark.parametrize("cfg", REPRESENTATIVE, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(use_ema=True), dict(use_ema=True, ema_overwrite_frequency=4),
                                     dict(gradient_accumulation_steps=3),
                                     dict(gradient_accumulation_steps=2, use_ema=True, ema_momentum=0.9)],
                         ids=["ema", "ema-overwrite", "accumulate", "accumulate-ema"])
def test_options_match_the_keras_loop(cfg, dtype, options, backend):
    if backend == "python":
        shapes = SHAPES[:2]
    else:
        shapes = SHAPES
    name, hyper = cfg
    rng = np.random.default_rng(3)
    params = make_params(rng, shapes, dtype)
    ref_params = [p.copy() for p in params]
    grads_seq = [mixed_grads(rng, shapes, dtype) for _ in range(12)]
    opt = getattr(fastopt, name)(params, backend=backend, **hyper, **options)
    for grads in grads_seq:
        assert opt.step(grads) is True
    k = options.get("gradient_accumulation_steps")
    assert all(s == len(grads_seq) // (k or 1) for s in opt._steps)  # updates, as Keras's iterations
    ema = _ema_reference(name, hyper, ref_params, grads_seq, options.get("ema_momentum", 0.99), k,
                         options.get("ema_overwrite_frequency"))
    def tol(r):  # float32: the mean of gradients spanning six decades cancels to a few ulps of the largest
        return tolerance(dtype) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5 * np.abs(r).max())
    for p, r in zip(params, ref_params):
        np.testing.assert_allclose(p, r, **tol(r))
    if options.get("use_ema"):
        for e, r in zip(opt.ema_params, ema):
            np.testing.assert_allclose(e, r, **tol(r))


def test_accumulation_with_clipping_and_adam_counts_updates():
    """Keras: the k-th call updates with the (clipped) mean; Adam's step counts updates."""
    rng = np.random.default_rng(0)
    p = rng.standard_normal(50)
    grads = [rng.standard_normal(50) * 10 for _ in range(6)]
    opt = fastopt.Adam([p], lr=0.01, gradient_accumulation_steps=3, global_clipnorm=1.0)
    q = p.copy()
    state = {"step": 0}
    for t, g in enumerate(grads):
        opt.step([g])
        if (t + 1) % 3 == 0:
            mean = sum(grads[t - 2:t + 1]) / 3
            (mean,) = reference.keras_clip([mean], global_clipnorm=1.0)
            reference.adam_step(q, mean, state, lr=0.01)  # step: Keras's iterations + 1
    np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)
    assert opt.state[0]["step"] == state["step"] == 2
    assert not opt.state[0]["accumulated_grad"].any()


def test_ema_swap_finalize_and_state_dict():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(20)
    opt = fastopt.SGD([p], lr=0.1, momentum=0.9, use_ema=True, ema_momentum=0.5)
    for _ in range(3):
        opt.step([rng.standard_normal(20)])
    before, ema = p.copy(), opt.ema_params[0].copy()
    opt.swap_ema()
    np.testing.assert_array_equal(p, ema)
    np.testing.assert_array_equal(opt.ema_params[0], before)
    opt.swap_ema()
    np.testing.assert_array_equal(p, before)
    sd = opt.state_dict()
    assert "ema" in sd["state"][0]
    q = before.copy()
    other = fastopt.SGD([q], lr=0.1, momentum=0.9, use_ema=True, ema_momentum=0.5)
    other.load_state_dict(sd)
    g = rng.standard_normal(20)
    opt.step([g])
    other.step([g])
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(opt.ema_params[0], other.ema_params[0])
    opt.finalize_variable_values()
    np.testing.assert_array_equal(p, opt.ema_params[0])
    with pytest.raises(ValueError, match="use_ema"):
        fastopt.SGD([np.zeros(3)], lr=0.1).swap_ema()


@pytest.mark.parametrize("bad, match", [
    (dict(ema_momentum=1.5), "ema_momentum"), (dict(ema_momentum=float("nan")), "ema_momentum"),
    (dict(ema_overwrite_frequency=0), "ema_overwrite_frequency"),
    (dict(gradient_accumulation_steps=1), "gradient_accumulation_steps"),
    (dict(gradient_accumulation_steps=2.5), "gradient_accumulation_steps"),
    (dict(use_ema="yes"), "use_ema"), (dict(skip_nonfinite=1), "skip_nonfinite")])
def test_bad_options(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        fastopt.Adam([np.zeros(3)], **bad)


@pytest.mark.parametrize("options", [{}, dict(global_clipnorm=1.0), dict(use_ema=True),
                                     dict(gradient_accumulation_steps=2), dict(clipnorm=0.5)],
                         ids=["plain", "clip", "ema", "accumulate", "clipnorm"])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_skip_nonfinite_leaves_everything_untouched(options, bad, backend):
    rng = np.random.default_rng(2)
    shapes = [(5,), (4, 3)]
    params = make_params(rng, shapes, np.float32)
    opt = fastopt.Adam(params, lr=0.01, skip_nonfinite=True, backend=backend, **options)
    for _ in range(3):
        opt.step(mixed_grads(rng, shapes, np.float32))
    snapshot = ([p.copy() for p in params], {i: {k: np.array(v, copy=True) for k, v in s.items()}
                                              for i, s in enumerate(opt.state)})
    grads = mixed_grads(rng, shapes, np.float32)
    grads[1][2, 1] = bad
    assert opt.step(grads) is False
    assert opt.skipped_steps == 1
    for p, q in zip(params, snapshot[0]):
        np.testing.assert_array_equal(p, q)
    for i, s in enumerate(opt.state):
        for k, v in s.items():
            if k == "accumulated_grad":  # the window's gradients are discarded
                assert not np.any(v)
            elif k == "step" and "gradient_accumulation_steps" in options:
                assert v == 1  # the update of calls 1 and 2; the discarded window made none
            else:
                np.testing.assert_array_equal(v, snapshot[1][i][k], err_msg=k)
    if "gradient_accumulation_steps" in options:  # the window restarts at call 3
        assert opt.state_dict()["fastopt"]["calls"] == 2
    assert opt.step(mixed_grads(rng, shapes, np.float32)) is True
    assert opt.state_dict()["fastopt"]["skipped_steps"] == 1


def test_loss_scaler_unscales_in_the_step():
    rng = np.random.default_rng(4)
    p = rng.standard_normal(100).astype(np.float32)
    q = p.copy()
    scaler = fastopt.LossScaler(init_scale=1024.0)
    opt = fastopt.Adam([p], lr=0.01, global_clipnorm=0.5)
    ref = reference.Reference("Adam", [q], lr=0.01, global_clipnorm=0.5)
    for _ in range(5):
        g = rng.standard_normal(100).astype(np.float32)
        assert scaler.step(opt, [g * np.float32(scaler.get_scale())])
        scaler.update()
        ref.step([g])
    np.testing.assert_allclose(p, q, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dynamic", [True, False])
def test_loss_scaler_matches_torch_grad_scaler(dynamic):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p = rng.standard_normal(16)
    tp = torch.nn.Parameter(torch.tensor(p.copy()))
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    kw = dict(init_scale=2.0 ** 10, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    ts = torch.amp.GradScaler("cpu", **kw, enabled=True)
    scaler = fastopt.LossScaler(**kw, dynamic=dynamic)
    opt = fastopt.SGD([p], lr=0.1, momentum=0.9)
    nonfinite = 0
    for t in range(30):
        g = rng.standard_normal(16)
        if t % 7 == 4:
            g[t % 16] = (math.inf, math.nan, -math.inf)[t % 3]
            nonfinite += 1
        ts.scale(torch.ones(()))  # torch's scaler needs a scale() call per iteration
        tp.grad = torch.tensor(g * ts.get_scale())
        ts.step(topt)
        applied = scaler.step(opt, [g * scaler.get_scale()])
        assert applied == bool(np.all(np.isfinite(g)))
        if dynamic:
            ts.update()
            scaler.update()
            assert scaler.get_scale() == ts.get_scale()
            assert scaler.state_dict()["_growth_tracker"] == ts.state_dict()["_growth_tracker"]
        else:
            scaler.update()
            ts.update(2.0 ** 10)
            assert scaler.get_scale() == 2.0 ** 10
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert nonfinite == 4 and opt.skipped_steps == nonfinite


def test_loss_scaler_state_and_validation():
    s = fastopt.LossScaler(init_scale=8.0, growth_interval=2)
    other = fastopt.LossScaler()
    other.load_state_dict(s.state_dict())
    assert other.get_scale() == 8.0 and other.growth_interval == 2
    with pytest.raises(ValueError, match="init_scale"):
        fastopt.LossScaler(init_scale=0.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        fastopt.LossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="_growth_tracker"):
        other.load_state_dict({"scale": 4.0, "_growth_tracker": -1})
    assert other.get_scale() == 8.0  # unchanged by the failed load
    assert s.scale(3.0) == 24.0


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the Keras parity tests run Keras on its torch backend")
    return keras


@pytest.mark.parametrize("options", [dict(use_ema=True, ema_momentum=0.9),
                                     dict(use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=3),
                                     dict(gradient_accumulation_steps=3),
                                     dict(gradient_accumulation_steps=2, use_ema=True)],
                         ids=["ema", "ema-overwrite", "accumulate", "accumulate-ema"])
def test_matches_keras(keras, options):
    """Keras 3's SGD with the same options, float64, 13 calls."""
    keras.config.set_floatx("float64")
    try:
        rng = np.random.default_rng(6)
        shapes = [(7,), (3, 5)]
        params = make_params(rng, shapes, np.float64)
        kvars = [keras.Variable(p.copy(), dtype="float64") for p in params]
        kopt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, **options)
        opt = fastopt.SGD(params, lr=0.05, momentum=0.9, convention="keras", **options) \
            if "convention" in fastopt.SGD.__init__.__code__.co_varnames else None
        if opt is None:  # without Keras's momentum convention: momentum-free SGD is the same rule
            kopt = keras.optimizers.SGD(learning_rate=0.05, **options)
            opt = fastopt.SGD(params, lr=0.05, **options)
        for _ in range(13):
            grads = mixed_grads(rng, shapes, np.float64)
            kopt.apply([keras.ops.convert_to_tensor(g) for g in grads], kvars)
            opt.step(grads)
        for p, v in zip(params, kvars):
            np.testing.assert_allclose(p, keras.ops.convert_to_numpy(v), rtol=1e-12, atol=1e-14)
        if options.get("use_ema"):
            averages = [keras.ops.convert_to_numpy(a) for a in kopt._model_variables_moving_average]
            for e, a in zip(opt.ema_params, averages):
                np.testing.assert_allclose(e, a, rtol=1e-12, atol=1e-14)
    finally:
        keras.config.set_floatx("float32")


@pytest.mark.parametrize("k", [None, 3])
def test_adam_accumulation_and_schedule_match_keras(keras, k):
    """Keras 3's Adam with a schedule and gradient accumulation, float64: bias corrections count
    updates, the schedule sees calls (eps = 0, where Keras's and torch's Adam are one formula)."""
    keras.config.set_floatx("float64")
    try:
        rng = np.random.default_rng(8)
        shapes = [(6,), (2, 3)]
        params = make_params(rng, shapes, np.float64)
        kvars = [keras.Variable(p.copy(), dtype="float64") for p in params]
        sched = dict(initial_learning_rate=0.05, decay_steps=4, decay_rate=0.5, staircase=True)
        kopt = keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(**sched),
                                     beta_1=0.8, beta_2=0.9, epsilon=0.0, gradient_accumulation_steps=k,
                                     use_ema=True, ema_momentum=0.7)
        opt = fastopt.Adam(params, lr=fastopt.schedules.ExponentialDecay(**sched), betas=(0.8, 0.9), eps=0.0,
                           gradient_accumulation_steps=k, use_ema=True, ema_momentum=0.7)
        for _ in range(14):
            grads = mixed_grads(rng, shapes, np.float64)
            kopt.apply([keras.ops.convert_to_tensor(g) for g in grads], kvars)
            opt.step(grads)
        for p, v in zip(params, kvars):
            np.testing.assert_allclose(p, keras.ops.convert_to_numpy(v), rtol=1e-12, atol=1e-14)
        for e, a in zip(opt.ema_params, kopt._model_variables_moving_average):
            np.testing.assert_allclose(e, keras.ops.convert_to_numpy(a), rtol=1e-12, atol=1e-14)
        assert opt.state[0]["step"] == int(keras.ops.convert_to_numpy(kopt.iterations))
    finally:
        keras.config.set_floatx("float32")
