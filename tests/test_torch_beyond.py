"""fastopt.torch's optimizers that torch.optim lacks (Lion, Lamb, LARS, Ftrl, Yogi, AdaBelief, Adan,
the schedule-free pair): each trains a torch model exactly as its NumPy class trains the same
arrays, per tensor and flat; skips what torch would skip; its state_dict resumes bit for bit."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt  # noqa: E402
import fastopt.torch as ft  # noqa: E402

#: (drop-in name, NumPy class name, hyperparameters, NumPy-side renames)
CONFIGS = [
    ("Lion", "Lion", dict(lr=1e-3, betas=(0.8, 0.95), weight_decay=0.1), {}),
    ("Lamb", "Lamb", dict(lr=1e-2, weight_decay=1e-2), {}),
    ("LARS", "LARS", dict(lr=0.1, weight_decay=1e-3, momentum=0.8, nesterov=True), {}),
    ("Ftrl", "Ftrl", dict(lr=0.05, l1=1e-3, l2=1e-3, beta=0.1), {}),
    ("Yogi", "Yogi", dict(lr=1e-2, eps=1e-4), {}),
    ("AdaBelief", "AdaBelief", dict(lr=1e-2, nesterov=True), {}),
    ("Adan", "Adan", dict(lr=1e-2, weight_decay=1e-2), {}),
    ("ScheduleFreeAdamW", "ScheduleFreeAdamW", dict(lr=1e-2, warmup_steps=3, weight_decay=1e-3), {}),
    ("SGDScheduleFree", "ScheduleFreeSGD", dict(lr=0.1, momentum=0.8), {"momentum": "b1"}),
]
IDS = [c[0] for c in CONFIGS]


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(torch.float64)


def loss(m, step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 6, generator=g, dtype=torch.float64)
    return (m(x) - torch.sin(x[:, :2])).pow(2).mean()


@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_drop_in_equals_the_numpy_class(cfg, flat):
    name, np_name, hyper, renames = cfg
    a, b = model(), model()
    topt = getattr(ft, name)(a.parameters(), flat=flat, **hyper)
    arrays = [p.detach().numpy() for p in b.parameters()]  # NumPy views of b's tensors
    nopt = getattr(fastopt, np_name)(arrays, **{renames.get(k, k): v for k, v in hyper.items()})
    for step in range(12):
        topt.zero_grad()
        loss(a, step).backward()
        topt.step()
        for p in b.parameters():
            p.grad = None
        loss(b, step).backward()
        nopt.step([p.grad.numpy() for p in b.parameters()])
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pa.detach().numpy(), pb.detach().numpy(), rtol=1e-12, atol=1e-14)
    state = topt.state[next(a.parameters())]
    assert float(state["step"]) == 12.0
    assert set(state) == {"step"} | set(nopt.state[0]) - {"step"}


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_state_dict_resumes_bit_for_bit(cfg):
    name, _, hyper, _ = cfg
    a = model()
    opt = getattr(ft, name)(a.parameters(), **hyper)
    for step in range(5):
        opt.zero_grad()
        loss(a, step).backward()
        opt.step()
    b = copy.deepcopy(a)
    opt_b = getattr(ft, name)(b.parameters(), **hyper)
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))
    for step in range(5, 10):
        for m, o in ((a, opt), (b, opt_b)):
            o.zero_grad()
            loss(m, step).backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_frozen_and_unreached_parameters_are_skipped(cfg, flat):
    name, _, hyper, _ = cfg
    m = model()
    m[0].weight.requires_grad_(False)
    frozen, head_bias = m[0].weight.detach().clone(), m[2].bias
    opt = getattr(ft, name)(m.parameters(), flat=flat, **hyper)
    opt.step()  # before any backward: nothing moves
    assert not opt.state
    for step in range(6):
        opt.zero_grad()
        if step < 2:
            out = loss(m, step)
        else:  # a loss that leaves the head's bias out: from here on it gets no gradient
            h = torch.tanh(m[0](torch.ones(3, 6, dtype=torch.float64)))
            out = (h @ m[2].weight.t()).pow(2).mean()
        out.backward()
        opt.step()
    assert torch.equal(m[0].weight.detach(), frozen)
    assert head_bias.grad is None and float(opt.state[head_bias]["step"]) == 2.0
    assert float(opt.state[m[2].weight]["step"]) == 6.0


def test_schedule_free_train_eval_moves_the_parameters_to_x_and_back():
    a = model()
    opt = ft.AdamWScheduleFree(a.parameters(), lr=1e-2)
    for step in range(4):
        opt.zero_grad()
        loss(a, step).backward()
        opt.step()
    w = a[0].weight
    y = w.detach().clone()
    opt.eval()
    assert not opt.training
    np.testing.assert_array_equal(w.detach().numpy(), opt.state[w]["x"].numpy())
    with pytest.raises(Exception, match="eval"):
        opt.step()
    opt.train()
    assert opt.training and torch.equal(w.detach(), y)
