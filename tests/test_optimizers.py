"""Every optimizer configuration x backend x dtype x size, many steps, against the reference."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt
from fastopt import reference
from tests.conftest import (CONFIGS, REPRESENTATIVE, config_id, make_params, mixed_grads, require_backend,
                            tolerance)

SIZES = [0, 1, 33, 100_003]
STEPS = 25


def run_pair(name, hyper, backend, dtype, shapes, steps=STEPS, seed=0, clip=None, grad_views=False):
    """Step fastopt and the reference on identical data; return (fastopt params, ref params, opt, ref)."""
    rng = np.random.default_rng(seed)
    params = make_params(rng, shapes, dtype)
    ref_params = [p.copy() for p in params]
    clip = clip or {}
    opt = getattr(fastopt, name)(params, backend=backend, **clip, **hyper)
    ref = reference.Reference(name, ref_params, **clip, **hyper)
    for _ in range(steps):
        grads = mixed_grads(rng, shapes, dtype)
        opt.step(grads)
        ref.step([g.copy() for g in grads])
    return params, ref_params, opt, ref


def assert_states_close(opt, ref, dtype):
    for mine, theirs in zip(opt.state, ref.state):
        for key, value in theirs.items():
            if value is None:
                continue
            if key == "step":
                assert mine["step"] == value
            else:
                np.testing.assert_allclose(mine[key], value, **tolerance(dtype), err_msg=key)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_matches_reference(cfg, dtype, size, backend):
    if backend == "python" and size > 1000:
        pytest.skip("the python backend runs the same source slowly; large sizes are covered compiled")
    name, hyper = cfg
    params, ref_params, opt, ref = run_pair(name, hyper, backend, dtype, [(size,)])
    for p, r in zip(params, ref_params):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, r, **tolerance(dtype))
    assert_states_close(opt, ref, dtype)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_many_arrays_and_groups(cfg, backend):
    """Arrays of several shapes in two groups with different learning rates."""
    name, hyper = cfg
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (5,), (2, 3, 2), (1,)]
    params = make_params(rng, shapes, np.float64)
    ref_params = [p.copy() for p in params]
    lr = hyper.get("lr", 0.01)
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": lr * 0.5}]
    opt = getattr(fastopt, name)(groups, backend=backend, **hyper)
    refs = [reference.Reference(name, ref_params[:2], **hyper),
            reference.Reference(name, ref_params[2:], **{**hyper, "lr": lr * 0.5})]
    for _ in range(20):
        grads = mixed_grads(rng, shapes, np.float64)
        opt.step([grads[:2], grads[2:]])  # nested: one list per group
        refs[0].step(grads[:2])
        refs[1].step(grads[2:])
    for p, r in zip(params, ref_params):
        np.testing.assert_allclose(p, r, rtol=1e-12, atol=1e-14)


CLIPS = [dict(clipnorm=0.5), dict(clipvalue=0.01), dict(global_clipnorm=1.0), dict(global_clipnorm=1e6)]


@pytest.mark.parametrize("clip", CLIPS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("cfg", REPRESENTATIVE, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keras_clipping_keywords(cfg, clip, dtype, backend):
    name, hyper = cfg
    shapes = [(40,), (7, 3)] if backend == "python" else [(70_001,), (300, 3)]
    params, ref_params, _, _ = run_pair(name, hyper, backend, dtype, shapes, steps=10, clip=clip)
    for p, r in zip(params, ref_params):
        if dtype == np.float32:
            # Keras clips by norm as g * c / max(norm, c); fastopt scales by one coefficient. The
            # 1-ulp gradient differences grow through centered RMSprop's sq - ga^2 cancellation
            # (5e-6 relative on 1 element in 70,001), so float32 is held to the array's scale
            np.testing.assert_allclose(p, r, rtol=1e-5, atol=1e-6 * float(np.abs(r).max()))
        else:
            np.testing.assert_allclose(p, r, **tolerance(dtype))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_flat_views_step_in_one_call(cfg, monkeypatch):
    """Views of one flatten() buffer (params and grads) merge into a single kernel call and
    give the same numbers as stepping each array."""
    require_backend("numba")
    name, hyper = cfg
    rng = np.random.default_rng(2)
    shapes = [(30, 7), (7,), (5, 5, 2), (1,)]
    arrays = make_params(rng, shapes, np.float32)
    _, views = fastopt.flatten(arrays)
    separate = [a.copy() for a in arrays]
    gflat, gviews = fastopt.flatten([np.zeros(s, np.float32) for s in shapes])
    opt = getattr(fastopt, name)(views, backend="numba", **hyper)
    opt_sep = getattr(fastopt, name)(separate, backend="numba", **hyper)
    for _ in range(10):
        grads = mixed_grads(rng, shapes, np.float32)
        for gv, g in zip(gviews, grads):
            gv[...] = g
        opt.step(gviews)
        opt_sep.step(grads)
    assert len(opt._plan.calls) == (len(shapes) if opt.per_array else 1)  # per-array rules: one call per view
    assert len(opt_sep._plan.calls) == len(shapes)
    for v, s in zip(views, separate):
        np.testing.assert_array_equal(v, s)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_agree(cfg, dtype):
    """numba, cython and python run one source with the same arithmetic: bit-identical results."""
    name, hyper = cfg
    results = {}
    for be in fastopt.available_backends():
        shapes = [(101,), (3, 5)]
        params, _, _, _ = run_pair(name, hyper, be, dtype, shapes, steps=15, seed=3,
                                   clip=dict(global_clipnorm=2.0))
        results[be] = params
    base = results.pop("numba", None) or results.pop(next(iter(results)))
    for be, params in results.items():
        for a, b in zip(base, params):
            np.testing.assert_array_equal(a, b, err_msg=be)


def test_results_do_not_depend_on_threads():
    require_backend("numba")
    n = 300_001
    out = []
    for threads in (1, 2):
        fastopt.set_num_threads(threads)
        try:
            params, _, _, _ = run_pair("Adam", dict(amsgrad=True), "numba", np.float32, [(n,)], steps=3,
                                       clip=dict(global_clipnorm=10.0))
        finally:
            fastopt.set_num_threads(2)
        out.append(params[0])
    np.testing.assert_array_equal(out[0], out[1])


def test_none_grad_skips_parameter():
    rng = np.random.default_rng(4)
    params = make_params(rng, [(5,), (6,)], np.float64)
    before = params[1].copy()
    opt = fastopt.Adam(params)
    opt.step([rng.standard_normal(5), None])
    np.testing.assert_array_equal(params[1], before)
    assert opt.state[0]["step"] == 1 and opt.state[1]["step"] == 0
    opt.step([rng.standard_normal(5), rng.standard_normal(6)])
    assert opt.state[0]["step"] == 2 and opt.state[1]["step"] == 1


def test_param_group_edits_take_effect_next_step():
    p = np.ones(4)
    opt = fastopt.SGD([p], lr=0.1)
    opt.step([np.ones(4)])
    np.testing.assert_allclose(p, 0.9)
    opt.param_groups[0]["lr"] = 0.5
    opt.step([np.ones(4)])
    np.testing.assert_allclose(p, 0.4)
    opt.param_groups[0]["momentum"] = 0.9  # enabling momentum allocates its buffer
    opt.step([np.ones(4)])
    assert "momentum_buffer" in opt.state[0]


def test_single_array_params_take_single_array_grads():
    p = np.zeros(10, np.float32)
    opt = fastopt.Adam(p, lr=0.1)
    opt.step(np.ones(10, np.float32))
    np.testing.assert_allclose(p, -0.1, rtol=1e-6)


def test_momentum_enabled_mid_training_starts_from_the_gradient():
    """torch creates the momentum buffer as a copy of the gradient when momentum first applies."""
    torch = pytest.importorskip("torch")
    p = np.array([1.0, -2.0, 3.0])
    opt = fastopt.SGD([p], lr=0.1, dampening=0.5)
    tp = torch.nn.Parameter(torch.tensor(p))
    topt = torch.optim.SGD([tp], lr=0.1, dampening=0.5)
    for k in range(4):
        if k == 2:
            opt.param_groups[0]["momentum"] = 0.9
            topt.param_groups[0]["momentum"] = 0.9
        g = np.array([0.5, -1.0, 2.0]) * (k + 1)
        opt.step([g])
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-14)


def test_dtype_reassigned_in_place_is_caught_before_any_write():
    p = np.zeros(8, np.float32)
    g = np.ones(8, np.float32)
    opt = fastopt.Adam(p)
    opt.step(g)
    before = p.copy()
    g.dtype = np.float64  # same object, now 4 float64 elements: a cached plan must not reuse it
    with pytest.raises((TypeError, ValueError), match="grads"):
        opt.step(g)
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("cfg", REPRESENTATIVE, ids=config_id)
def test_empty_param_groups_are_allowed_as_in_torch(cfg):
    """torch.optim accepts groups without parameters (ZeroRedundancyOptimizer builds a rank's
    optimizer with groups whose parameters all live on other ranks): they change nothing."""
    name, hyper = cfg
    rng = np.random.default_rng(3)
    a, b = make_params(rng, [(4, 3)], np.float64), None
    b = [x.copy() for x in a]
    plain = getattr(fastopt, name)(a, **hyper)
    padded = getattr(fastopt, name)([{"params": []}, {"params": b}], **hyper)
    padded.add_param_group({"params": []})
    for _ in range(4):
        g = mixed_grads(rng, [(4, 3)], np.float64)
        plain.step(g)
        padded.step([[], g, []])
    np.testing.assert_array_equal(a[0], b[0])
    restored = getattr(fastopt, name)([{"params": []}, {"params": [b[0].copy()]}, {"params": []}], **hyper)
    restored.load_state_dict(padded.state_dict())
    assert len(restored.param_groups) == 3
    with pytest.raises(ValueError, match="empty parameter list"):
        getattr(fastopt, name)([], **hyper)
