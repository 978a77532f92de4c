"""fastopt.torch steps exactly the parameters torch.optim steps, per tensor and in flat mode:
frozen parameters, parameters whose gradient is None this step (a branch the loss does not reach,
``zero_grad(set_to_none=True)``), and ``step()`` before any backward are left alone; a zeroed
gradient (``set_to_none=False``) is a gradient, as in torch."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as ft  # noqa: E402
from tests.conftest import torch_default_dtype  # noqa: E402
from tests.test_torch_adapter import CONFIGS, cfg_id  # noqa: E402

MODES = [False, True]


@pytest.fixture(autouse=True)
def float64_scalars():
    """torch's scalar state in float64, as fastopt's (see test_torch_adapter.scalar_dtype)."""
    with torch_default_dtype(torch, np.float64):
        yield
MODE_IDS = ["per-tensor", "flat"]


class TwoBranch(torch.nn.Module):
    """A shared trunk and two heads; the loss reaches head ``b`` only while ``use_b``."""

    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Linear(4, 4)
        self.a = torch.nn.Linear(4, 1)
        self.b = torch.nn.Linear(4, 1)

    def forward(self, x, use_b=True):
        h = torch.tanh(self.trunk(x))
        return self.a(h) + (self.b(h) if use_b else 0.0)


def make_pair(model_fn):
    torch.manual_seed(0)
    a = model_fn().to(torch.float64)
    return a, copy.deepcopy(a)


def optimizers(name, hyper, a, b, flat):
    topt = getattr(torch.optim, name)(a.parameters(), foreach=False, **hyper)
    fopt = getattr(ft, name)(b.parameters(), flat=flat, **hyper)
    return topt, fopt


def batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(8, 1, generator=g, dtype=torch.float64)


def assert_same_model(ma, mb, topt, fopt):
    for (n, pa), pb in zip(ma.named_parameters(), mb.parameters()):
        np.testing.assert_allclose(pb.detach().numpy(), pa.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=n)
        assert (pa in topt.state) == (pb in fopt.state), n
        ta, tb = topt.state.get(pa, {}), fopt.state.get(pb, {})
        assert set(ta) == set(tb), n
        for key in ta:
            np.testing.assert_allclose(np.asarray(tb[key]), np.asarray(ta[key]), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{n} {key}")


@pytest.mark.parametrize("flat", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_frozen_parameters_do_not_move(cfg, flat):
    name, hyper = cfg
    ma, mb = make_pair(lambda: torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)))
    for m in (ma, mb):
        m[0].weight.requires_grad_(False)
    frozen = mb[0].weight.detach().clone()
    topt, fopt = optimizers(name, hyper, ma, mb, flat)
    for step in range(5):
        x, y = batch(step)
        for m, o in ((ma, topt), (mb, fopt)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step()
    assert torch.equal(mb[0].weight.detach(), frozen)
    assert mb[0].weight.grad is None
    assert_same_model(ma, mb, topt, fopt)
    if flat:  # the frozen weight is not in the buffer: the trainable ones step in one call
        trainable = sum(p.requires_grad for p in mb.parameters())
        assert len(fopt._inner._plan.calls) == (trainable if fopt._inner.per_array else 1)


@pytest.mark.parametrize("set_to_none", [True, False], ids=["set_to_none", "zeroed"])
@pytest.mark.parametrize("flat", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_a_branch_without_gradient(cfg, flat, set_to_none):
    """Head b gets gradients for 3 steps, then none: with ``set_to_none`` its ``.grad`` stays
    None and torch skips it (its step count stays 3); zeroed, it is stepped with zeros."""
    name, hyper = cfg
    ma, mb = make_pair(TwoBranch)
    topt, fopt = optimizers(name, hyper, ma, mb, flat)
    for step in range(10):
        x, y = batch(step)
        for m, o in ((ma, topt), (mb, fopt)):
            o.zero_grad(set_to_none=set_to_none)
            torch.nn.functional.mse_loss(m(x, use_b=step < 3), y).backward()
            o.step()
        assert (mb.b.weight.grad is None) == (ma.b.weight.grad is None)
    assert_same_model(ma, mb, topt, fopt)
    if set_to_none and "step" in topt.state[ma.b.weight]:
        assert float(fopt.state[mb.b.weight]["step"]) == 3.0


@pytest.mark.parametrize("flat", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_step_before_any_backward_is_a_no_op(cfg, flat):
    name, hyper = cfg
    ma, mb = make_pair(TwoBranch)
    before = [p.detach().clone() for p in mb.parameters()]
    topt, fopt = optimizers(name, hyper, ma, mb, flat)
    for o in (topt, fopt):
        o.step()
        o.zero_grad()
        o.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(mb.parameters(), before))
    assert_same_model(ma, mb, topt, fopt)  # no state, or torch's initial state (Adagrad)
    assert len(fopt.state_dict()["state"]) == len(topt.state_dict()["state"])


def test_flat_gradients_are_none_after_zero_grad_and_views_after_backward():
    model = TwoBranch().to(torch.float64)
    opt = ft.Adam(model.parameters(), lr=0.1, flat=True)
    (_, gbuf), = opt._flat.buffers.values()
    inside = (lambda t: gbuf.data_ptr() <= t.data_ptr() < gbuf.data_ptr() + gbuf.numel() * gbuf.element_size())
    assert all(p.grad is None for p in model.parameters())
    x, y = batch(0)
    for _ in range(2):
        opt.zero_grad()
        assert all(p.grad is None for p in model.parameters())
        torch.nn.functional.mse_loss(model(x), y).backward()
        assert all(p.grad is not None and inside(p.grad) for p in model.parameters())
        opt.step()
        assert len(opt._inner._plan.calls) == 1
    # a second backward without zero_grad accumulates in the buffer, as in torch
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    g1 = model.a.weight.grad.clone()
    torch.nn.functional.mse_loss(model(x), y).backward()
    torch.testing.assert_close(model.a.weight.grad, 2 * g1)
    assert inside(model.a.weight.grad)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and float(p.grad.abs().sum()) == 0.0 for p in model.parameters())


def test_flat_mode_takes_a_gradient_assigned_by_hand():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    q = copy.deepcopy(p)
    fopt, topt = ft.SGD([p], lr=0.5, flat=True), torch.optim.SGD([q], lr=0.5)
    for t, o in ((p, fopt), (q, topt)):
        t.grad = torch.arange(5, dtype=torch.float64)
        o.step()
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=0)
    assert p.grad is p._fastopt_flat[2]  # moved into the buffer
