"""Muon: fastopt.Muon and fastopt.torch.Muon against torch.optim.Muon and the NumPy reference.

torch.optim.Muon runs its Newton-Schulz iterations in bfloat16; fastopt (and fastopt.reference.Muon) in the
parameter's dtype. The tight parity tests therefore compare with torch's own step with that one cast removed
(``_ns_in_dtype`` patched over ``torch.optim._muon._zeropower_via_newtonschulz``); one test bounds the distance
to unpatched torch (bfloat16 rounding).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import fastopt
import fastopt.reference as ref
from fastopt import _backends

NSTEPS = 30
SHAPES = [(16, 16), (24, 9), (9, 24)]  # square, tall (torch transposes), wide
BACKENDS = [b for b in ("numba", "cython", "python") if b in _backends.available_backends()]


def _rel(a, b, start):
    """max |a - b| relative to the displacement of b from start."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b - start)))


def _grads(rng, shapes, dtype, n=NSTEPS):
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(n)]


# ---------------------------------------------------------------------------------- NumPy vs reference
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hyper", [{}, dict(nesterov=False), dict(weight_decay=0.0, momentum=0.3),
                                   dict(adjust_lr_fn="match_rms_adamw", lr=0.02), dict(adjust_lr_fn="original"),
                                   dict(ns_steps=1, eps=1e-3, ns_coefficients=(2.0, -1.5, 0.5))])
def test_numpy_matches_reference(backend, dtype, hyper):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    start = [p.copy() for p in params]
    mine = [p.copy() for p in params]
    opt = fastopt.Muon(mine, backend=backend, **hyper)
    oracle = ref.Muon(params, **hyper)
    for gs in _grads(rng, SHAPES, dtype):
        opt.step(gs)
        oracle.step(gs)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b, s in zip(mine, params, start):
        assert _rel(a, b, s) <= tol
    for k, st in enumerate(oracle.state):
        np.testing.assert_allclose(opt.state[k]["momentum_buffer"], st["momentum_buffer"], rtol=tol, atol=tol)
        assert "step" not in opt.state[k]


def test_options_match_reference():
    """maximize and clipvalue go through grad_scale/clip; the reference's grads are changed the same way."""
    rng = np.random.default_rng(1)
    p = rng.standard_normal((10, 7))
    q, s = p.copy(), p.copy()
    opt = fastopt.Muon([p], lr=0.01, maximize=True, clipvalue=0.5)
    oracle = ref.Muon([q], lr=0.01)
    for _ in range(10):
        g = rng.standard_normal((10, 7))
        opt.step([g])
        oracle.step([-np.clip(g, -0.5, 0.5)])
    assert _rel(p, q, s) <= 1e-12


def test_workspace_allocated_once():
    rng = np.random.default_rng(2)
    p = rng.standard_normal((12, 5))
    opt = fastopt.Muon([p])
    opt.step([rng.standard_normal((12, 5))])
    ids = {k: id(v) for k, v in opt._scratch.items()}
    for _ in range(3):
        opt.step([rng.standard_normal((12, 5))])
    assert {k: id(v) for k, v in opt._scratch.items()} == ids


# ---------------------------------------------------------------------------------- bad input
def _bad(make, exc, match):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3))
    before = w.copy()
    with pytest.raises(exc, match=match):
        make(w)
    np.testing.assert_array_equal(w, before)


def test_bad_input_raises_before_anything_changes():
    _bad(lambda w: fastopt.Muon([w, np.zeros(3)]), ValueError, r"params\[1\] has shape \(3,\)")
    _bad(lambda w: fastopt.Muon([{"params": [w]}, {"params": [np.zeros((2, 2, 2))]}]), ValueError,
         r"param_groups\[1\]\['params'\]\[0\]")
    _bad(lambda w: fastopt.Muon([w], ns_steps=0), ValueError, "ns_steps")
    _bad(lambda w: fastopt.Muon([w], ns_steps=100), ValueError, "ns_steps")
    _bad(lambda w: fastopt.Muon([w], ns_coefficients=(3.4, float("nan"), 2.0)), ValueError, "NaN|finite")
    _bad(lambda w: fastopt.Muon([w], ns_coefficients=(3.4, float("inf"), 2.0)), ValueError, "finite")
    _bad(lambda w: fastopt.Muon([w], ns_coefficients=(1.0, 2.0)), ValueError, "3 real numbers")
    _bad(lambda w: fastopt.Muon([w], adjust_lr_fn="sqrt"), ValueError, "adjust_lr_fn")
    _bad(lambda w: fastopt.Muon([w], lr=-1.0), ValueError, "learning rate")
    _bad(lambda w: fastopt.Muon([w], convention="keras"), ValueError, "convention")


def test_bad_group_edit_and_add_change_nothing():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 3))
    opt = fastopt.Muon([w])
    opt.step([rng.standard_normal((4, 3))])
    before, buf = w.copy(), opt.state[0]["momentum_buffer"].copy()
    with pytest.raises(ValueError, match="has shape"):
        opt.add_param_group({"params": [np.zeros(5)]})
    opt.param_groups[0]["ns_steps"] = 0
    with pytest.raises(ValueError, match="ns_steps"):
        opt.step([rng.standard_normal((4, 3))])
    np.testing.assert_array_equal(w, before)
    np.testing.assert_array_equal(opt.state[0]["momentum_buffer"], buf)
    assert len(opt.param_groups) == 1


# ---------------------------------------------------------------------------------- torch
torch = pytest.importorskip("torch")
if not hasattr(torch.optim, "Muon"):  # pragma: no cover
    pytest.skip("torch.optim.Muon needs torch >= 2.9", allow_module_level=True)
import torch.optim._muon as _torch_muon  # noqa: E402

import fastopt.torch as ft  # noqa: E402


def _ns_in_dtype(grad, ns_coefficients, ns_steps, eps):
    """torch's _zeropower_via_newtonschulz without its bfloat16 cast (and so on a copy)."""
    a, b, c = ns_coefficients
    x = grad.clone()
    if grad.size(0) > grad.size(1):
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram = x @ x.T
        upd = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, upd, x, beta=a)
    if grad.size(0) > grad.size(1):
        x = x.T
    return x


@pytest.fixture
def ns_in_dtype(monkeypatch):
    monkeypatch.setattr(_torch_muon, "_zeropower_via_newtonschulz", _ns_in_dtype)


TORCH_CONFIGS = [{}, dict(nesterov=False), dict(weight_decay=0.0), dict(weight_decay=0.3, lr=0.01),
                 dict(adjust_lr_fn="original", lr=0.02), dict(adjust_lr_fn="match_rms_adamw", lr=0.02),
                 dict(momentum=0.3, ns_steps=3, eps=1e-4)]


def _torch_pair(dtype, hyper, groups=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = [torch.randn(*s, generator=g, dtype=dtype) for s in SHAPES]
    a = [torch.nn.Parameter(t.clone()) for t in data]
    b = [torch.nn.Parameter(t.clone()) for t in data]
    if groups:  # several groups with their own hyperparameters
        mk = lambda ps: [{"params": ps[:1], "lr": 0.03, "nesterov": False}, {"params": ps[1:], **hyper}]  # noqa: E731
        return data, a, b, torch.optim.Muon(mk(a)), ft.Muon(mk(b))
    return data, a, b, torch.optim.Muon(a, **hyper), ft.Muon(b, **hyper)


def _run(a, b, ta, tb, dtype, steps=NSTEPS, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for pa, pb in zip(a, b):
            grad = torch.randn(pa.shape, generator=g, dtype=dtype)
            pa.grad, pb.grad = grad.clone(), grad.clone()
        ta.step()
        tb.step()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hyper", TORCH_CONFIGS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "default")
@pytest.mark.parametrize("groups", [False, True])
def test_torch_parity(ns_in_dtype, dtype, hyper, groups):
    data, a, b, ta, tb = _torch_pair(dtype, hyper, groups)
    _run(a, b, ta, tb, dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    for pa, pb, s in zip(a, b, data):
        if dtype == torch.float64:  # relative to the displacement over the 30 steps
            assert _rel(pb.detach().numpy(), pa.detach().numpy(), s.numpy()) <= tol
        else:  # float32: a few ulps of the parameters (their displacement is ~1e-2 of them)
            np.testing.assert_allclose(pb.detach().numpy(), pa.detach().numpy(), rtol=tol, atol=1e-6)
        np.testing.assert_allclose(tb.state[pb]["momentum_buffer"].numpy(), ta.state[pa]["momentum_buffer"].numpy(),
                                   rtol=tol, atol=tol)
        assert set(tb.state[pb]) == set(ta.state[pa]) == {"momentum_buffer"}


def test_torch_bfloat16_distance():
    """Unpatched torch (bfloat16 iterations) stays within bfloat16 rounding of fastopt's."""
    data, a, b, ta, tb = _torch_pair(torch.float64, dict(lr=0.02))
    _run(a, b, ta, tb, torch.float64)
    for pa, pb, s in zip(a, b, data):
        assert _rel(pb.detach().numpy(), pa.detach().numpy(), s.numpy()) <= 5e-2


@pytest.mark.parametrize("direction", ["torch->fastopt", "fastopt->torch"])
def test_state_dict_interchange(ns_in_dtype, direction):
    dtype = torch.float64
    data, a, b, ta, tb = _torch_pair(dtype, dict(lr=0.02, adjust_lr_fn="match_rms_adamw"), groups=True)
    _run(a, b, ta, tb, dtype, steps=5)
    src, dst_cls = (ta, ft.Muon) if direction == "torch->fastopt" else (tb, torch.optim.Muon)
    sd = copy.deepcopy(src.state_dict())
    c = [torch.nn.Parameter(p.detach().clone()) for p in (a if src is ta else b)]
    dst = dst_cls([{"params": c[:1]}, {"params": c[1:]}])
    dst.load_state_dict(sd)
    assert [{k: v for k, v in g.items() if k != "params"} for g in dst.param_groups] == \
        [{k: v for k, v in g.items() if k != "params"} for g in src.param_groups]
    # both continue: the source and the loaded copy give the same numbers
    others = a if src is ta else b
    _run(others, c, src, dst, dtype, steps=5, seed=7)
    for p, q in zip(others, c):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    out = dst.state_dict()
    assert set(out["state"][0]) == {"momentum_buffer"}


def test_torch_bad_input():
    w = torch.nn.Parameter(torch.randn(4, 3))
    before = w.detach().clone()
    with pytest.raises(ValueError, match="2-D"):
        ft.Muon([w, torch.nn.Parameter(torch.zeros(3))])
    for bad in (dict(ns_steps=0), dict(ns_coefficients=(1.0, float("nan"), 1.0)), dict(adjust_lr_fn="x")):
        with pytest.raises(ValueError):
            ft.Muon([w], **bad)
    assert torch.equal(w.detach(), before)


def test_torch_tensor_lr_and_defaults():
    import inspect
    ours, theirs = inspect.signature(ft.Muon), inspect.signature(torch.optim.Muon)
    for name, par in theirs.parameters.items():
        assert ours.parameters[name].default == par.default, name
    w = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    opt = ft.Muon([w], lr=torch.tensor(0.01))
    w.grad = torch.ones_like(w)
    opt.step()
    assert "momentum_buffer" in opt.state[w]
