"""fastopt.torch: drop-in torch.optim optimizers, trained side by side with torch's own."""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as ft  # noqa: E402
from tests.conftest import torch_default_dtype  # noqa: E402

#: (name, hyperparameters) for every optimizer both libraries have
CONFIGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.2, maximize=False)),
    ("Adam", dict(lr=3e-3)),
    ("Adam", dict(lr=3e-3, amsgrad=True, weight_decay=1e-2)),
    ("AdamW", dict(lr=3e-3, weight_decay=0.05)),
    ("RMSprop", dict(lr=1e-3, momentum=0.5, centered=True)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, weight_decay=1e-3)),
    ("Adagrad", dict(lr=0.03, lr_decay=1e-3, initial_accumulator_value=0.1)),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=1e-3)),
    ("Adamax", dict(lr=3e-3, betas=(0.8, 0.99))),
    ("RAdam", dict(lr=3e-3, betas=(0.8, 0.9), weight_decay=1e-2, decoupled_weight_decay=True)),
    ("Rprop", dict(lr=1e-3, etas=(0.4, 1.3), step_sizes=(1e-5, 1.0))),
    ("NAdam", dict(lr=3e-3, momentum_decay=0.01)),
    ("NAdam", dict(lr=3e-3, weight_decay=1e-2, decoupled_weight_decay=True)),
    ("ASGD", dict(lr=0.05, lambd=1e-3, t0=20)),
    ("Adafactor", dict(lr=3e-3, weight_decay=1e-2)),
    ("Adafactor", dict(lr=1e-2, beta2_decay=-0.6, eps=(1e-20, 1e-3), d=2.0)),
]


def cfg_id(cfg):
    name, hyper = cfg
    return name + "-" + "-".join(f"{k}={v}" for k, v in hyper.items())


@pytest.fixture(autouse=True)
def deterministic_torch():
    """One torch thread: multi-threaded float32 conv reductions are not bitwise repeatable, and
    both models must see the same gradients for their curves to be compared at 1e-5."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    return x / 16.0, y


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.head = torch.nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x.view(-1, 1, 8, 8))), 2)
        return self.head(x.flatten(1))


def train(model, opt, data, steps=200, *, scheduler=None, scaler=None, clip=None, batch=64):
    """Minibatch training on a fixed batch sequence; returns the loss per step."""
    x, y = data
    rng = np.random.default_rng(0)
    dtype = next(model.parameters()).dtype
    xs, ys = torch.tensor(x, dtype=dtype), torch.tensor(y)
    losses = []
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(len(y), batch, replace=False))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return np.array(losses)


def scalar_dtype(dtype):
    """torch's scalar state (NAdam's mu_product, ASGD's eta, mu) has the default dtype: float64
    runs compare under a float64 default (fastopt keeps these scalars in double)."""
    return torch_default_dtype(torch, np.float64 if dtype == torch.float64 else np.float32)


def pair(make_model, dtype, seed=0):
    torch.manual_seed(seed)
    a = make_model().to(dtype)
    b = copy.deepcopy(a)
    return a, b


def rtol_for(dtype):
    return 1e-5 if dtype == torch.float32 else 1e-10


@pytest.mark.parametrize("make_model", [mlp, SmallCNN], ids=["mlp", "cnn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
def test_loss_curves_match_torch(cfg, dtype, make_model, digits):
    name, hyper = cfg
    a, b = pair(make_model, dtype)
    with scalar_dtype(dtype):
        expected = train(a, getattr(torch.optim, name)(a.parameters(), foreach=False, **hyper), digits)
        got = train(b, getattr(ft, name)(b.parameters(), **hyper), digits)
    # float32 Adafactor: its row and column statistics are sums that fastopt and torch round in a
    # different order; over 200 steps the curves part by up to ~2e-5
    rtol = rtol_for(dtype) * (5 if name == "Adafactor" and dtype == torch.float32 else 1)
    np.testing.assert_allclose(got, expected, rtol=rtol)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pb.detach().numpy(), pa.detach().numpy(), rtol=100 * rtol, atol=100 * rtol)


@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[4], CONFIGS[5], CONFIGS[6]], ids=cfg_id)
def test_with_scheduler_clipping_and_param_groups(cfg, flat, digits):
    name, hyper = cfg
    a, b = pair(mlp, torch.float64)

    def groups(model):
        w = [p for n, p in model.named_parameters() if n.endswith("weight")]
        bias = [p for n, p in model.named_parameters() if n.endswith("bias")]
        return [{"params": w}, {"params": bias, "lr": hyper["lr"] * 0.5}]

    topt = getattr(torch.optim, name)(groups(a), foreach=False, **hyper)
    fopt = getattr(ft, name)(groups(b), flat=flat, **hyper)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=30, gamma=0.5)
    fsched = torch.optim.lr_scheduler.StepLR(fopt, step_size=30, gamma=0.5)
    expected = train(a, topt, digits, scheduler=tsched, clip=0.5)
    got = train(b, fopt, digits, scheduler=fsched, clip=0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert fopt.param_groups[1]["lr"] == topt.param_groups[1]["lr"]


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[6], CONFIGS[8]], ids=cfg_id)
def test_grad_scaler_unscales_and_skips_like_torch(cfg, digits):
    name, hyper = cfg
    a, b = pair(mlp, torch.float32)
    sa = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=20)
    sb = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=20)
    expected = train(a, getattr(torch.optim, name)(a.parameters(), foreach=False, **hyper), digits, steps=60,
                     scaler=sa)
    got = train(b, getattr(ft, name)(b.parameters(), **hyper), digits, steps=60, scaler=sb)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert sa.get_scale() == sb.get_scale()


def test_grad_scaler_skips_a_step_with_inf():
    p = torch.nn.Parameter(torch.ones(3))
    opt = ft.Adam([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale((p * 0).sum())  # initializes the scale, as the loss scaling of an iteration would
    p.grad = torch.tensor([1.0, float("inf"), 1.0])
    scaler.step(opt)
    scaler.update()
    np.testing.assert_array_equal(p.detach().numpy(), 1.0)
    assert not opt.state  # nothing stepped: no state, as torch
    assert scaler.get_scale() == 2.0 ** 15


@pytest.mark.parametrize("cfg", CONFIGS, ids=cfg_id)
@pytest.mark.parametrize("direction", ["torch->fastopt", "fastopt->torch"])
def test_state_dict_interchange_with_torch(cfg, direction, digits):
    """Train 40 steps with one library, load its state_dict into the other, continue 40 steps:
    the result equals training 80 steps with the first."""
    with scalar_dtype(torch.float64):
        _interchange(cfg, direction, digits)


def _interchange(cfg, direction, digits):
    name, hyper = cfg
    first, second = (torch.optim, ft) if direction == "torch->fastopt" else (ft, torch.optim)
    kw = {"foreach": False} if first is torch.optim else {}
    a, _ = pair(mlp, torch.float64)
    opt_a = getattr(first, name)(a.parameters(), **kw, **hyper)
    train(a, opt_a, digits, steps=40)
    b = copy.deepcopy(a)
    kw_b = {"foreach": False} if second is torch.optim else {}
    opt_b = getattr(second, name)(b.parameters(), **kw_b, **hyper)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    expected = train(a, opt_a, digits, steps=40)
    got = train(b, opt_b, digits, steps=40)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_state_is_torch_shaped_and_shares_fastopt_buffers():
    model = mlp()
    opt = ft.Adam(model.parameters(), lr=1e-3)
    assert not opt.state  # torch creates state at the first step
    model(torch.randn(4, 64)).sum().backward()
    opt.step()
    w = model[0].weight
    st = opt.state[w]
    assert set(st) == {"step", "exp_avg", "exp_avg_sq"} and float(st["step"]) == 1.0
    assert st["exp_avg"].shape == w.shape
    opt.step()
    assert float(opt.state[w]["step"]) == 2.0  # the step tensor follows without copying
    assert float(opt.state_dict()["state"][0]["step"]) == 2.0


def test_flat_mode_steps_the_model_in_one_kernel_call(digits):
    a, b = pair(SmallCNN, torch.float32)
    fl = ft.flatten_parameters(b)
    (pbuf, gbuf), = fl.buffers.values()
    opt = ft.AdamW(b.parameters(), lr=3e-3, global_clipnorm=1.0)
    topt = torch.optim.AdamW(a.parameters(), lr=3e-3, foreach=False)

    def clip_then_step(opt_):
        torch.nn.utils.clip_grad_norm_(a.parameters(), 1.0)
        opt_.step()

    x, y = digits
    xs, ys = torch.tensor(x[:64], dtype=torch.float32), torch.tensor(y[:64])
    for _ in range(30):
        for model, o in ((a, topt), (b, opt)):
            o.zero_grad()
            torch.nn.functional.cross_entropy(model(xs), ys).backward()
        clip_then_step(topt)
        opt.step()
    assert len(opt._inner._plan.calls) == 1  # the whole model in one fused call
    for p in b.parameters():  # autograd accumulated into the flat buffer, and still does
        assert gbuf.data_ptr() <= p.grad.data_ptr() < gbuf.data_ptr() + gbuf.numel() * 4
        assert pbuf.data_ptr() <= p.data_ptr() < pbuf.data_ptr() + pbuf.numel() * 4
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pb.detach().numpy(), pa.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_flat_gradients_recover_after_model_zero_grad():
    model = mlp()
    opt = ft.SGD(model.parameters(), lr=0.1, flat=True)
    model.zero_grad()  # nn.Module.zero_grad sets the grads to None
    model(torch.randn(3, 64)).sum().backward()
    opt.step()
    opt.step()
    assert len(opt._inner._plan.calls) == 1
    p = next(model.parameters())
    assert p.grad is p._fastopt_flat[2]


def test_step_hooks_and_closure():
    p = torch.nn.Parameter(torch.ones(2))
    opt = ft.SGD([p], lr=0.5)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == ["pre", "post"] and loss.item() == 2.0
    np.testing.assert_allclose(p.detach().numpy(), 0.0)


def test_zero_grad_follows_torch():
    p = torch.nn.Parameter(torch.ones(2))
    opt = ft.Adam([p])
    p.grad = torch.ones(2)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and float(p.grad.abs().sum()) == 0
    opt.zero_grad()
    assert p.grad is None


@pytest.mark.parametrize("make, match", [
    (lambda: torch.nn.Parameter(torch.ones(3, dtype=torch.float16)), "torch.float16"),
    (lambda: torch.nn.Parameter(torch.ones(3, device="meta")), "meta"),
    (lambda: torch.nn.Parameter(torch.ones(4, 4).t()), "not contiguous"),
])
def test_unsupported_tensors_raise_clearly(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ft.Adam([make()])


def test_capturable_and_differentiable_are_rejected():
    with pytest.raises(ValueError, match="capturable"):
        ft.Adam([torch.nn.Parameter(torch.ones(2))], capturable=True)
    with pytest.raises(ValueError, match="differentiable"):
        ft.SGD([torch.nn.Parameter(torch.ones(2))], differentiable=True)


def test_adam_decoupled_weight_decay_is_adamw(digits):
    a, b = pair(mlp, torch.float64)
    expected = train(a, torch.optim.AdamW(a.parameters(), lr=3e-3, weight_decay=0.1, foreach=False), digits, steps=30)
    got = train(b, ft.Adam(b.parameters(), lr=3e-3, weight_decay=0.1, decoupled_weight_decay=True), digits, steps=30)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_bad_hyperparameter_edit_raises_before_anything_changes():
    p = torch.nn.Parameter(torch.ones(3))
    opt = ft.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    before = p.detach().clone()
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="learning rate"):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_add_param_group_mid_training_keeps_state_like_torch(digits):
    """A group added after some steps starts fresh; every other parameter keeps its state."""
    a, b = pair(mlp, torch.float64)
    opt_a = torch.optim.Adam(list(a[0].parameters()), lr=3e-3, foreach=False)
    opt_b = ft.Adam(list(b[0].parameters()), lr=3e-3)
    train(a, opt_a, digits, steps=20)
    train(b, opt_b, digits, steps=20)
    opt_a.add_param_group({"params": list(a[2].parameters()), "lr": 1e-3})
    opt_b.add_param_group({"params": list(b[2].parameters()), "lr": 1e-3})
    expected = train(a, opt_a, digits, steps=20)
    got = train(b, opt_b, digits, steps=20)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    w = b[0].weight
    assert float(opt_b.state[w]["step"]) == 40.0
    assert float(opt_b.state[b[2].weight]["step"]) == 20.0


def test_numpy_class_given_torch_parameters_points_to_fastopt_torch():
    import fastopt
    with pytest.raises(TypeError, match=r"params\[0\].*Parameter.*fastopt\.torch\.Adam"):
        fastopt.Adam(mlp().parameters())
    opt = fastopt.Adam([np.zeros(3)])
    with pytest.raises(TypeError, match=r"grads\[0\].*fastopt\.torch"):
        opt.step([torch.zeros(3)])


def test_tensor_learning_rate_is_accepted_as_in_torch():
    p, q = (torch.nn.Parameter(torch.ones(3, dtype=torch.float64)) for _ in range(2))
    fopt = ft.SGD([p], lr=torch.tensor(0.1), momentum=0.9)
    topt = torch.optim.SGD([q], lr=torch.tensor(0.1), momentum=0.9)
    for step in range(3):
        for t, o in ((p, fopt), (q, topt)):
            t.grad = torch.full((3,), float(step + 1), dtype=torch.float64)
            o.step()
        fopt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = torch.tensor(0.05)
    torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-14, atol=0)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[0] in ("NAdam", "ASGD")], ids=cfg_id)
def test_scalar_state_rounds_as_torchs_float32_default(cfg, digits):
    """Under torch's float32 default dtype, NAdam's mu_product and ASGD's eta and mu are float32
    tensors even for float64 parameters; the drop-ins round them alike and follow torch to 1e-10
    (in double they would part by ~1e-8 within a few steps)."""
    name, hyper = cfg
    a, b = pair(mlp, torch.float64)
    with torch_default_dtype(torch, np.float32):
        topt = getattr(torch.optim, name)(a.parameters(), foreach=False, **hyper)
        fopt = getattr(ft, name)(b.parameters(), **hyper)
        expected = train(a, topt, digits, steps=60)
        got = train(b, fopt, digits, steps=60)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(pb.detach().numpy(), pa.detach().numpy(), rtol=1e-10, atol=1e-12)
    ts, fs = topt.state_dict()["state"][0], fopt.state_dict()["state"][0]
    assert {k: v.dtype for k, v in fs.items()} == {k: v.dtype for k, v in ts.items()}
    assert all(float(fs[k]) == float(ts[k]) for k in ts if ts[k].dim() == 0)


@pytest.mark.parametrize("name", sorted({c[0] for c in CONFIGS}))
def test_signature_is_torchs(name):
    """Every keyword of torch.optim's class, in its order and with its default (the
    implementation switches accepted and ignored)."""
    import inspect
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    ours = inspect.signature(getattr(ft, name)).parameters
    for key, param in theirs.items():
        assert key in ours, key
        assert ours[key].default == param.default, key
        assert ours[key].kind == param.kind or param.kind == param.VAR_KEYWORD, key
    positional = [k for k, p in theirs.items() if p.kind == p.POSITIONAL_OR_KEYWORD]
    assert [k for k, p in ours.items() if p.kind == p.POSITIONAL_OR_KEYWORD][:len(positional)] == positional
