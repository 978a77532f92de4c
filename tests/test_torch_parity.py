"""fastopt against torch.optim and torch.nn.utils directly (skipped when torch is absent)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastopt
from tests.conftest import CONFIGS, config_id, make_params, mixed_grads, torch_default_dtype, torch_rule

torch = pytest.importorskip("torch")

STEPS = 50


#: the configurations of rules torch.optim has, in torch's convention
TORCH_CONFIGS = [c for c in CONFIGS if torch_rule(c, torch) is not None]
SHAPES = [(7,), (3, 5), (1,), (257,)]


def torch_run(name, hyper, params, grads_seq, dtype):
    with torch_default_dtype(torch, dtype):
        tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
        opt = getattr(torch.optim, name)(tparams, foreach=False, **hyper)
        for grads in grads_seq:
            for tp, g in zip(tparams, grads):
                tp.grad = torch.tensor(g)
            opt.step()
    return [tp.detach().numpy() for tp in tparams], opt


@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_torch_optim(cfg, dtype, backend):
    if backend == "python":
        pytest.skip("the python backend is pinned against the compiled ones in test_optimizers")
    name, hyper = cfg
    rng = np.random.default_rng(10)
    params = make_params(rng, SHAPES, dtype)
    grads_seq = [mixed_grads(rng, SHAPES, dtype) for _ in range(STEPS)]
    expected, topt = torch_run(name, hyper, params, grads_seq, dtype)
    mine = [p.copy() for p in params]
    opt = getattr(fastopt, name)(mine, backend=backend, **hyper)
    for grads in grads_seq:
        opt.step(grads)
    for m, e in zip(mine, expected):
        if dtype == np.float64:
            np.testing.assert_allclose(m, e, rtol=1e-12, atol=1e-14)
        else:
            # torch's lerp/addcdiv round differently in float32; after 50 steps of gradients
            # spanning six decades single entries drift by ~1e-5 of the array's scale
            np.testing.assert_allclose(m, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())
    # state names and values follow torch's
    for i, tp in enumerate(topt.param_groups[0]["params"]):
        for key, value in topt.state[tp].items():
            value = value.numpy()
            if key == "step":
                assert opt.state[i]["step"] == int(value)
            elif dtype == np.float64:
                np.testing.assert_allclose(opt.state[i][key], value, rtol=1e-12, atol=1e-14, err_msg=key)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype, backend):
    rng = np.random.default_rng(11)
    shapes = [(70_001,), (13, 3), (1,)] if backend != "python" else [(101,), (13, 3), (1,)]
    grads = mixed_grads(rng, shapes, dtype)
    tgrads = [torch.tensor(g) for g in grads]
    tparams = [torch.nn.Parameter(torch.zeros_like(t)) for t in tgrads]
    for tp, tg in zip(tparams, tgrads):
        tp.grad = tg
    exact = torch.nn.utils.get_total_norm([t.double() for t in tgrads], norm_type=norm_type)
    torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    total = fastopt.clip_grad_norm_(grads, max_norm, norm_type=norm_type, backend=backend)
    # fastopt accumulates in float64 for every dtype: its norm is torch's float64 norm
    assert total == pytest.approx(float(exact), rel=1e-12)
    # torch sums float32 norms in float32 (4e-5 off at 70K mixed-magnitude elements), so the
    # float32 clipped gradients differ from torch's by that much
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    for g, tp in zip(grads, tparams):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=rtol, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_value_matches_torch(dtype, backend):
    rng = np.random.default_rng(12)
    grads = mixed_grads(rng, [(1001,), (4, 4)], dtype)
    grads[0][3] = np.nan
    tparams = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64 if dtype == np.float64 else torch.float32))
               for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(tparams, 0.5)
    fastopt.clip_grad_value_(grads, 0.5, backend=backend)
    for g, tp in zip(grads, tparams):
        np.testing.assert_array_equal(g, tp.grad.numpy())


def test_nonfinite_norm_scales_like_torch(backend):
    grads = [np.array([1.0, np.inf, 2.0]), np.array([3.0])]
    tparams = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, 1.0)
    total = fastopt.clip_grad_norm_(grads, 1.0, backend=backend)
    assert math.isinf(total) and math.isinf(float(tnorm))
    for g, tp in zip(grads, tparams):
        np.testing.assert_array_equal(g, tp.grad.numpy())
