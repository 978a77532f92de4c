"""state_dict / load_state_dict: a resumed run continues bit for bit; failures change nothing."""
from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

import fastopt
from tests.conftest import (CONFIGS, REPRESENTATIVE, config_id, make_params, mixed_grads, require_backend,
                            torch_default_dtype, torch_rule)

SHAPES = [(3, 4), (5,), (1,), (2, 1, 3)]
BEFORE, AFTER = 7, 8


@pytest.fixture(params=["numba", "cython"])
def compiled(request):
    require_backend(request.param)
    return request.param


def _bits(a):
    return (a.dtype.str, a.shape, a.tobytes())


def snapshot(opt):
    params = [p for g in opt.param_groups for p in g["params"]]
    return dict(params=[_bits(p) for p in params],
                state=[{k: (_bits(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                       for s in opt.state],
                steps=list(opt._steps),
                groups=repr([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]))


def assert_same_state(a, b):
    """Two optimizers hold the same state, bit for bit."""
    assert len(a.state) == len(b.state)
    for i, (x, y) in enumerate(zip(a.state, b.state)):
        assert x.keys() == y.keys(), i
        for k in x:
            if isinstance(x[k], np.ndarray):
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"state {i} {k}")
            else:
                assert x[k] == y[k], (i, k)
    if a.counts_steps:  # torch's SGD keeps no step count: a resumed SGD knows only "not the first"
        assert a._steps == b._steps


def grads_seq(seed, n, dtype, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [mixed_grads(rng, shapes, dtype) for _ in range(n)]


def roundtrip(sd, how):
    if how == "deepcopy":
        return copy.deepcopy(sd)
    return pickle.loads(pickle.dumps(sd))


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("rebuild", ["same-hyper", "defaults"])
def test_resume_is_bit_identical(cfg, dtype, how, rebuild, compiled):
    """Train 7 steps, save, restore into a fresh optimizer on copies of the params, then 8
    more steps of both: the resumed run is the never-stopped run, to the bit. A fresh
    optimizer built with the default hyperparameters gets them from the state_dict."""
    name, hyper = cfg
    rng = np.random.default_rng(0)
    params = make_params(rng, SHAPES, dtype)
    seq = grads_seq(1, BEFORE + AFTER, dtype)
    opt = getattr(fastopt, name)(params, backend=compiled, **hyper)
    for grads in seq[:BEFORE]:
        opt.step(grads)
    sd = opt.state_dict()
    saved = roundtrip(sd, how)
    resumed_params = [p.copy() for p in params]
    resumed = getattr(fastopt, name)(resumed_params, backend=compiled,
                                     **(hyper if rebuild == "same-hyper" else {}))
    resumed.load_state_dict(saved)
    assert_same_state(opt, resumed)
    assert [dict(g, params=None) for g in resumed.param_groups] == [dict(g, params=None) for g in opt.param_groups]
    continue_both(opt, resumed, seq[BEFORE:], params, resumed_params)


def continue_both(opt, resumed, grads_seq_after, params, resumed_params):
    """Step the never-stopped and the resumed optimizer alike: they must stay bit-identical."""
    for grads in grads_seq_after:
        opt.step(grads)
        resumed.step(grads)
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(q, p)
    assert_same_state(opt, resumed)


@pytest.mark.parametrize("cfg", REPRESENTATIVE, ids=config_id)
def test_resume_with_groups_clipping_and_skipped_params(cfg, compiled):
    """Two groups with their own lr, global clipping, and a parameter whose grad was None for
    every step before the save (so it has no state yet)."""
    name, hyper = cfg
    rng = np.random.default_rng(2)
    params = make_params(rng, SHAPES, np.float64)
    seq = grads_seq(3, BEFORE + AFTER, np.float64)
    lr = hyper.get("lr", 0.01)

    def build(ps):
        return getattr(fastopt, name)([{"params": ps[:2]}, {"params": ps[2:], "lr": lr / 3}],
                                      backend=compiled, global_clipnorm=5.0, **hyper)

    opt = build(params)
    for grads in seq[:BEFORE]:
        opt.step([grads[0], grads[1], None, grads[3]])
    sd = opt.state_dict()
    if name != "Adagrad":  # torch's Adagrad has state from construction
        assert 2 not in sd["state"]
    resumed_params = [p.copy() for p in params]
    resumed = build(resumed_params)
    resumed.load_state_dict(pickle.loads(pickle.dumps(sd)))
    continue_both(opt, resumed, seq[BEFORE:], params, resumed_params)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_resume_into_flat_views(cfg):
    """State saved from separate arrays loads into views of one flatten() buffer (which step
    in one merged kernel call) and continues bit for bit."""
    require_backend("numba")
    name, hyper = cfg
    rng = np.random.default_rng(4)
    params = make_params(rng, SHAPES, np.float32)
    seq = grads_seq(5, BEFORE + AFTER, np.float32)
    opt = getattr(fastopt, name)(params, backend="numba", **hyper)
    for grads in seq[:BEFORE]:
        opt.step(grads)
    _, views = fastopt.flatten(params)
    _, gviews = fastopt.flatten([np.zeros(s, np.float32) for s in SHAPES])
    resumed = getattr(fastopt, name)(views, backend="numba", **hyper)
    resumed.load_state_dict(opt.state_dict())
    for grads in seq[BEFORE:]:
        opt.step(grads)
        for gv, g in zip(gviews, grads):
            gv[...] = g
        resumed.step(gviews)
    assert len(resumed._plan.calls) == (len(SHAPES) if resumed.per_array else 1)  # per-array rules: one per view
    for p, v in zip(params, views):
        np.testing.assert_array_equal(v, p)


def _trained(name="Adam", backend="numba", steps=3, seed=0, shapes=SHAPES, **hyper):
    rng = np.random.default_rng(seed)
    params = make_params(rng, shapes, np.float64)
    opt = getattr(fastopt, name)(params, backend=backend, **hyper)
    for grads in grads_seq(seed + 1, steps, np.float64, shapes):
        opt.step(grads)
    return opt, params


def test_state_dict_arrays_are_copies(compiled):
    opt, _ = _trained("Adam", compiled, amsgrad=True)
    sd = opt.state_dict()
    before = snapshot(opt)
    for entry in sd["state"].values():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                assert not any(np.shares_memory(v, b) for b in opt._buffers)
                v += 1.0
            else:
                entry[k] = v + 100
    sd["param_groups"][0]["lr"] = 99.0
    sd["param_groups"][0]["params"].append(123)
    assert snapshot(opt) == before
    assert opt.param_groups[0]["lr"] == 1e-3
    # and state arrays are shaped like their parameters, step is an int, as torch
    sd = opt.state_dict()
    for i, p in enumerate(opt.param_groups[0]["params"]):
        assert sd["state"][i]["exp_avg"].shape == p.shape
        assert sd["state"][i]["exp_avg"].dtype == p.dtype
        assert type(sd["state"][i]["step"]) is int and sd["state"][i]["step"] == 3
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3]


def test_loading_restores_hyperparameters(compiled):
    opt, params = _trained("RMSprop", compiled, momentum=0.5)
    opt.param_groups[0]["lr"] = 0.0123
    opt.param_groups[0]["centered"] = True  # an edit that enables a state array
    opt.step(grads_seq(7, 1, np.float64)[0])
    sd = opt.state_dict()
    fresh = fastopt.RMSprop([p.copy() for p in params], backend=compiled)  # lr 1e-2, no momentum
    fresh.load_state_dict(sd)
    g = fresh.param_groups[0]
    assert g["lr"] == 0.0123 and g["centered"] is True and g["momentum"] == 0.5
    assert set(fresh.state[0]) == {"step", "square_avg", "grad_avg", "momentum_buffer"}
    assert fresh.state_dict()["param_groups"] == sd["param_groups"]


def test_state_dict_round_trips_through_load():
    opt, params = _trained("AdamW", amsgrad=True, weight_decay=0.3)
    sd = opt.state_dict()
    other = fastopt.AdamW([p.copy() for p in params])
    other.load_state_dict(sd)
    sd2 = other.state_dict()
    assert sd2["param_groups"] == sd["param_groups"] and sd2["fastopt"] == sd["fastopt"]
    assert sd2["state"].keys() == sd["state"].keys()
    for i in sd["state"]:
        assert sd2["state"][i].keys() == sd["state"][i].keys()
        for k, v in sd["state"][i].items():
            np.testing.assert_array_equal(sd2["state"][i][k], v)


def _assert_load_fails(target, sd, exc, match):
    before = snapshot(target)
    with pytest.raises(exc, match=match):
        target.load_state_dict(sd)
    assert snapshot(target) == before


@pytest.mark.parametrize("src,dst", [("Adam", "SGD"), ("Adam", "RMSprop"), ("Adam", "AdamW"),
                                     ("AdamW", "Adam"), ("SGD", "Adagrad"), ("RMSprop", "Adam")])
def test_loading_another_optimizers_state_raises(src, dst, compiled):
    hyper = dict(momentum=0.9) if src == "SGD" else {}
    opt, params = _trained(src, compiled, **hyper)
    target, _ = _trained(dst, compiled, seed=5)
    sd = opt.state_dict()
    _assert_load_fails(target, sd, ValueError, rf"state_dict is from {src}, not {dst}")
    # without fastopt's marker (a torch-style dict) the state keys give it away
    del sd["fastopt"]
    if {src, dst} == {"Adam", "AdamW"}:
        return  # Adam and AdamW share hyperparameter and state names: only the marker tells
    _assert_load_fails(target, sd, ValueError, r"state_dict (state 0 has keys|group 0 has hyperparameters)")


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_layout_mismatch_raises_and_changes_nothing(name, compiled):
    hyper = dict(momentum=0.9) if name == "SGD" else {}
    opt, params = _trained(name, compiled, **hyper)
    sd = opt.state_dict()
    rng = np.random.default_rng(8)
    # a different number of groups
    two = getattr(fastopt, name)([{"params": make_params(rng, SHAPES[:2], np.float64)},
                                  {"params": make_params(rng, SHAPES[2:], np.float64)}],
                                 backend=compiled, **hyper)
    two.step(grads_seq(1, 1, np.float64)[0])
    _assert_load_fails(two, sd, ValueError, r"state_dict has 1 parameter groups, the optimizer has 2")
    # a different number of params
    fewer, _ = _trained(name, compiled, shapes=SHAPES[:3], **hyper)
    _assert_load_fails(fewer, sd, ValueError, r"state_dict group 0 has 4 parameters, the optimizer's has 3")
    more, _ = _trained(name, compiled, shapes=SHAPES + [(2,)], **hyper)
    _assert_load_fails(more, sd, ValueError, r"state_dict group 0 has 4 parameters, the optimizer's has 5")
    # a param of another size
    other, _ = _trained(name, compiled, shapes=[(3, 4), (6,), (1,), (2, 1, 3)], **hyper)
    _assert_load_fails(other, sd, ValueError, r"state_dict state 1 '\w+' has shape \(5,\), "
                                              r"the parameter has shape \(6,\)")


def test_missing_or_bad_state_entries_raise(compiled):
    opt, params = _trained("Adam", compiled, amsgrad=True)
    target, _ = _trained("Adam", compiled, seed=3, amsgrad=True)
    good = opt.state_dict()

    def edited(fn):
        sd = copy.deepcopy(good)
        fn(sd)
        return sd

    cases = [
        (lambda sd: sd["state"][1].pop("max_exp_avg_sq"), ValueError, r"state 1 lacks \['max_exp_avg_sq'\]"),
        (lambda sd: sd["state"][0].pop("exp_avg"), ValueError, r"state 0 lacks \['exp_avg'\]"),
        (lambda sd: sd["state"][2].update(momentum_buffer=np.zeros(1)), ValueError, r"state 2 has keys"),
        (lambda sd: sd["state"].update({9: sd["state"][0]}), ValueError, r"state for parameter 9"),
        (lambda sd: sd["state"][3].update(step=-1), ValueError, r"\['state'\]\[3\]\['step'\] must be >= 0"),
        (lambda sd: sd["state"][3].update(step=math.inf), ValueError, r"\['state'\]\[3\]\['step'\] must be a whole"),
        (lambda sd: sd["state"][3].update(step=2.5), ValueError, r"\['step'\] must be a whole number, got 2.5"),
        (lambda sd: sd["state"][3].update(step="7"), TypeError, r"\['step'\] must be a whole number"),
        (lambda sd: sd["state"][3].update(step=np.arange(2)), ValueError, r"\['step'\] must be one number"),
        (lambda sd: sd.update(state=1.5), TypeError, r"state_dict\['state'\] must be a dict, got float"),
        (lambda sd: sd.update(param_groups={"lr": 1}), TypeError, r"state_dict\['param_groups'\] must be a list"),
        (lambda sd: sd["param_groups"][0].update(params=3), TypeError, r"\['params'\] must be a list"),
        (lambda sd: sd["param_groups"][0].update(weight_decay=10 ** 400), ValueError, r"too large for a double"),
        (lambda sd: sd["state"][3].update(exp_avg=np.zeros(7)), ValueError, r"state 3 'exp_avg' has shape \(7,\)"),
        (lambda sd: sd["state"][3].update(exp_avg=np.zeros((2, 1, 3), complex)), TypeError,
         r"state 3 'exp_avg' has dtype complex128"),
        (lambda sd: sd["param_groups"][0].update(lr=-1.0), ValueError,
         r"learning rate \(state_dict param_groups\[0\] lr\)"),
        (lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.5)), ValueError, r"betas\[1\]"),
        (lambda sd: sd["param_groups"][0].update(momentum=0.9), ValueError, r"hyperparameters \['momentum'\]"),
        (lambda sd: sd.pop("state"), ValueError, r"'state' and 'param_groups'"),
        (lambda sd: sd.pop("param_groups"), ValueError, r"'state' and 'param_groups'"),
    ]
    for fn, exc, match in cases:
        _assert_load_fails(target, edited(fn), exc, match)
    _assert_load_fails(target, [good], ValueError, r"state_dict must be a dict")


def test_amsgrad_switched_on_without_its_state_raises(compiled):
    """A state_dict saved without amsgrad, edited to turn it on, lacks max_exp_avg_sq."""
    opt, _ = _trained("Adam", compiled)
    sd = opt.state_dict()
    sd["param_groups"][0]["amsgrad"] = True
    target, _ = _trained("Adam", compiled, seed=4)
    _assert_load_fails(target, sd, ValueError, r"lacks \['max_exp_avg_sq'\]")
    opt, _ = _trained("RMSprop", compiled)
    sd = opt.state_dict()
    sd["param_groups"][0]["centered"] = True
    target, _ = _trained("RMSprop", compiled, seed=4)
    _assert_load_fails(target, sd, ValueError, r"lacks \['grad_avg'\]")


def test_adagrad_state_exists_before_the_first_step():
    params = make_params(np.random.default_rng(0), SHAPES, np.float32)
    opt = fastopt.Adagrad(params, initial_accumulator_value=0.25)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    for i, p in enumerate(params):
        assert sd["state"][i]["step"] == 0
        np.testing.assert_array_equal(sd["state"][i]["sum"], np.full(p.shape, 0.25, np.float32))
        assert opt.state[i]["step"] == 0
    # and it loads into a fresh one whose initial accumulator differs
    other = fastopt.Adagrad([p.copy() for p in params], initial_accumulator_value=0.0)
    other.load_state_dict(sd)
    np.testing.assert_array_equal(other.state[2]["sum"], 0.25)
    assert other.param_groups[0]["initial_accumulator_value"] == 0.25


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_no_state_before_the_first_step(name):
    opt = getattr(fastopt, name)(make_params(np.random.default_rng(0), SHAPES, np.float32))
    assert opt.state_dict()["state"] == {}


def test_sgd_without_momentum_has_no_state(compiled):
    opt, params = _trained("SGD", compiled, lr=0.1, weight_decay=0.01)
    sd = opt.state_dict()
    assert sd["state"] == {}
    assert all(s == {} for s in opt.state)
    fresh = fastopt.SGD([p.copy() for p in params], backend=compiled)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.1
    # with momentum: a buffer and no step counter, as torch
    opt, _ = _trained("SGD", compiled, momentum=0.9)
    assert all(set(e) == {"momentum_buffer"} for e in opt.state_dict()["state"].values())


def test_torch_style_state_dict_without_fastopt_key_loads(compiled):
    opt, params = _trained("Adam", compiled, steps=BEFORE, amsgrad=True)
    sd = opt.state_dict()
    del sd["fastopt"]
    for entry in sd["state"].values():  # torch keeps step as a float scalar tensor
        entry["step"] = np.array(float(entry["step"]), np.float32)
    resumed_params = [p.copy() for p in params]
    resumed = fastopt.Adam(resumed_params, backend=compiled)
    resumed.load_state_dict(sd)
    assert resumed.state[0]["step"] == BEFORE and resumed.param_groups[0]["amsgrad"] is True
    for grads in grads_seq(11, AFTER, np.float64):
        opt.step(grads)
        resumed.step(grads)
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(q, p)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_loads_torch_optimizer_state_dict(cfg):
    """A real torch.optim state_dict (its implementation switches foreach/fused/... included,
    tensors as they are) loads, and both continue alike."""
    torch = pytest.importorskip("torch")
    require_backend("numba")
    name, hyper = cfg
    cls = torch_rule(cfg, torch)
    if cls is None:
        pytest.skip("not a torch.optim rule or option")
    rng = np.random.default_rng(12)
    params = make_params(rng, SHAPES, np.float64)
    seq = grads_seq(13, BEFORE + AFTER, np.float64)
    with torch_default_dtype(torch, np.float64):
        tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
        topt = cls(tparams, foreach=False, **hyper)

        def tstep(grads):
            for tp, g in zip(tparams, grads):
                tp.grad = torch.tensor(g)
            topt.step()

        for grads in seq[:BEFORE]:
            tstep(grads)
        mine = [tp.detach().numpy().copy() for tp in tparams]
        opt = getattr(fastopt, name)(mine, backend="numba")
        opt.load_state_dict(topt.state_dict())
        for k, v in hyper.items():
            assert opt.param_groups[0][k] == v
        for grads in seq[BEFORE:]:
            tstep(grads)
            opt.step(grads)
    for m, tp in zip(mine, tparams):
        np.testing.assert_allclose(m, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_extra_group_keys_round_trip_but_another_optimizers_hyperparameters_do_not():
    """torch's schedulers write ``initial_lr`` into the groups; resuming loads it back (torch keeps
    any extra key). A key that is another optimizer's hyperparameter means the wrong checkpoint."""
    opt = fastopt.Adam(np.zeros(4))
    opt.step(np.ones(4))
    opt.param_groups[0]["initial_lr"] = 1e-3
    sd = opt.state_dict()
    fresh = fastopt.Adam(np.zeros(4))
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["initial_lr"] == 1e-3
    sd["param_groups"][0]["momentum"] = 0.9
    with pytest.raises(ValueError, match=r"\['momentum'\] that Adam does not have"):
        fastopt.Adam(np.zeros(4)).load_state_dict(sd)
