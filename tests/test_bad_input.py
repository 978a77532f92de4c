"""Bad input raises a clear TypeError/ValueError naming the argument and the problem, and it
raises before any buffer is touched: params, state arrays, step counters and hyperparameters
are bit-identical after the failing call. Kernels never read or write outside their arrays."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import fastopt
from fastopt import reference
from tests.conftest import CONFIGS, config_id, make_params, mixed_grads, require_backend, tolerance

COMPILED = ["numba", "cython"]
ALL_BACKENDS = ["numba", "cython", "python"]

#: a few configs that between them use every state array (and one that has none)
SOME = [CONFIGS[0], CONFIGS[4], CONFIGS[7], CONFIGS[10], CONFIGS[14], CONFIGS[17]]
#: configs with at least one state array
STATEFUL = [CONFIGS[4], CONFIGS[7], CONFIGS[10], CONFIGS[14], CONFIGS[17]]

SHAPES = [(3, 4), (5,), (7,)]


@pytest.fixture(params=COMPILED)
def compiled(request):
    require_backend(request.param)
    return request.param


# ---------------------------------------------------------------------------- snapshots
def _bits(a):
    return (a.dtype.str, a.shape, a.tobytes())


def snapshot(opt, arrays=()):
    """Bitwise copies of every param, every state array, the step counters and the groups."""
    params = [p for g in opt.param_groups for p in g["params"]]
    state = [{k: (_bits(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in opt.state]
    groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return dict(params=[_bits(p) for p in params], state=state, steps=list(opt._steps), groups=groups,
                n_groups=len(opt.param_groups), n_params=len(params),
                arrays=[_bits(a) for a in arrays])


def assert_unchanged(before, after):
    assert after["n_groups"] == before["n_groups"]
    assert after["n_params"] == before["n_params"]
    for i, (a, b) in enumerate(zip(before["params"], after["params"])):
        assert a == b, f"param {i} changed"
    assert len(after["state"]) == len(before["state"])
    for i, (a, b) in enumerate(zip(before["state"], after["state"])):
        assert a.keys() == b.keys(), f"state {i} keys changed: {sorted(a)} -> {sorted(b)}"
        for k in a:
            assert a[k] == b[k], f"state {i} {k!r} changed"
    assert after["steps"] == before["steps"], "step counters changed"
    assert repr(after["groups"]) == repr(before["groups"]), "hyperparameters changed"
    for i, (a, b) in enumerate(zip(before["arrays"], after["arrays"])):
        assert a == b, f"array {i} changed"


def build(cfg, backend, dtype=np.float64, shapes=SHAPES, seed=0, **kwargs):
    name, hyper = cfg
    rng = np.random.default_rng(seed)
    params = make_params(rng, shapes, dtype)
    opt = getattr(fastopt, name)(params, backend=backend, **hyper, **kwargs)
    grads = mixed_grads(rng, shapes, dtype)
    return opt, params, grads


def a_state_name(opt, i=0):
    names = [k for k in opt.state[i] if k != "step"]
    return names[0] if names else None


def state_view_straddling(opt, name, n, dtype):
    """A 1-D view of ``n`` elements of the state buffer ``name`` starting inside param 0's state
    and reaching into param 1's (their states are consecutive in one buffer)."""
    view = opt.state[0][name].reshape(-1)
    owner = fastopt.flat._owner(view)
    off = fastopt.flat.address(view) - fastopt.flat.address(owner) + (view.size - 2) * view.itemsize
    return fastopt.flat.span_view(owner, off, n, np.dtype(dtype))


# ---------------------------------------------------------------------------- bad grads
# (id, make(opt, params, grads) -> bad grads, exception, match)
BAD_GRADS = [
    ("np.matrix", lambda o, p, g: [np.asmatrix(g[0]), g[1], g[2]], TypeError,
     r"grads\[0\] is a numpy.matrix.*np.asarray"),
    ("masked", lambda o, p, g: [g[0], np.ma.masked_array(g[1]), g[2]], TypeError,
     r"grads\[1\] is a numpy.ma.*MaskedArray"),
    ("big-endian", lambda o, p, g: [g[0], g[1], g[2].astype(g[2].dtype.newbyteorder(">"))], TypeError,
     r"grads\[2\] has dtype >f"),
    ("too-few", lambda o, p, g: g[:-1], ValueError, r"expected 3 gradients.*got 2"),
    ("too-many", lambda o, p, g: g + [np.zeros(2)], ValueError, r"expected 3 gradients.*got 4"),
    ("empty-list", lambda o, p, g: [], ValueError, r"expected 3 gradients.*got 0"),
    ("one-array-for-many", lambda o, p, g: g[0], ValueError, r"grads is one array.*3 parameters"),
    ("wrong-length", lambda o, p, g: [g[0], np.zeros(6), g[2]], ValueError,
     r"grads\[1\] has shape \(6,\).*parameter has shape \(5,\)"),
    ("wrong-shape-same-size", lambda o, p, g: [g[0].reshape(12), g[1], g[2]], ValueError,
     r"grads\[0\] has shape \(12,\).*\(3, 4\)"),
    ("wrong-shape-transposed", lambda o, p, g: [np.ascontiguousarray(g[0].T), g[1], g[2]], ValueError,
     r"grads\[0\] has shape \(4, 3\)"),
    ("float32-for-float64", lambda o, p, g: [g[0], g[1], g[2].astype(np.float32)], TypeError,
     r"grads\[2\] has dtype float32 but its parameter has dtype float64"),
    ("int-grads", lambda o, p, g: [g[0].astype(np.int64), g[1], g[2]], TypeError,
     r"grads\[0\] has dtype int64"),
    ("bool-grads", lambda o, p, g: [g[0], g[1] > 0, g[2]], TypeError, r"grads\[1\] has dtype bool"),
    ("strided", lambda o, p, g: [g[0], g[1], np.repeat(g[2], 2)[::2]], ValueError,
     r"grads\[2\] is not C-contiguous"),
    ("fortran-order", lambda o, p, g: [np.asfortranarray(np.ones((3, 4))), g[1], g[2]], ValueError,
     r"grads\[0\] is not C-contiguous"),
    ("grad-is-param", lambda o, p, g: [g[0], p[1], g[2]], ValueError,
     r"grads\[1\] overlaps params 1.*must not share memory"),
    ("grad-views-param", lambda o, p, g: [p[0][:], g[1], g[2]], ValueError, r"grads\[0\] overlaps params 0"),
    ("grad-views-other-param", lambda o, p, g: [g[0], p[0].reshape(-1)[3:8], g[2]], ValueError,
     r"grads\[1\] overlaps params 0"),
    ("grad-views-state", lambda o, p, g: [o.state[0][a_state_name(o)], g[1], g[2]], ValueError,
     r"grads\[0\] overlaps optimizer state"),
    ("grad-views-state-of-other-param", lambda o, p, g: [g[0], g[1], o.state[2][a_state_name(o)]], ValueError,
     r"grads\[2\] overlaps optimizer state"),
    ("grad-straddles-states", lambda o, p, g: [g[0], state_view_straddling(o, a_state_name(o), 5, p[1].dtype),
                                              g[2]], ValueError, r"grads\[1\] overlaps optimizer state"),
    ("list-of-lists-wrong-lengths", lambda o, p, g: [[1.0, 2.0], [3.0]], ValueError,
     r"expected 3 gradients.*got 2"),
    ("list-of-lists", lambda o, p, g: [x.tolist() for x in g], TypeError,
     r"grads\[0\] must be a numpy.ndarray, got list"),
    ("python-float", lambda o, p, g: [g[0], g[1], 1.0], TypeError, r"grads\[2\] must be a numpy.ndarray, got float"),
    ("string", lambda o, p, g: "grads", TypeError, r"grads must be an array or a list of arrays, got str"),
    ("dict", lambda o, p, g: {0: g[0], 1: g[1], 2: g[2]}, TypeError,
     r"grads must be an array or a list of arrays, got dict"),
    ("none", lambda o, p, g: None, TypeError, r"grads must be an array or a list of arrays, got NoneType"),
    ("generator", lambda o, p, g: (x for x in g), TypeError, r"grads must be .* got generator"),
]
STATE_CASES = {"grad-views-state", "grad-views-state-of-other-param", "grad-straddles-states"}


@pytest.mark.parametrize("case", BAD_GRADS, ids=[c[0] for c in BAD_GRADS])
@pytest.mark.parametrize("cfg", SOME, ids=config_id)
@pytest.mark.parametrize("when", ["first-step", "cached-plan", "changed-list"])
def test_bad_grads_raise_before_anything_changes(case, cfg, when, compiled):
    _, make, exc, match = case
    clip = dict(global_clipnorm=5.0) if cfg is CONFIGS[7] else {}  # the fused norm pass too
    opt, params, grads = build(cfg, compiled, **clip)
    if case[0] in STATE_CASES and a_state_name(opt) is None:
        pytest.skip("this configuration has no state arrays")
    if when != "first-step":
        opt.step(grads)
        opt.step(grads)  # the second call reuses the cached plan
    bad = make(opt, params, grads)
    if when == "changed-list" and isinstance(bad, list):
        grads[:] = bad  # the very list object of the good steps, now holding bad contents
        bad = grads
    before = snapshot(opt)
    with pytest.raises(exc, match=match):
        opt.step(bad)
    assert_unchanged(before, snapshot(opt))
    # and the optimizer still works with good grads afterwards
    good = mixed_grads(np.random.default_rng(9), SHAPES, np.float64)
    opt.step(good)


@pytest.mark.parametrize("cfg", [CONFIGS[3], CONFIGS[6], CONFIGS[13]], ids=config_id)
def test_bad_grad_after_good_grads_of_same_list(cfg, compiled):
    """Good steps, then the same list with one array replaced by a bad one, then good again."""
    opt, params, grads = build(cfg, compiled)
    for _ in range(3):
        opt.step(grads)
    kept = grads[1]
    for bad in (np.zeros(6), grads[1].astype(np.float32), np.repeat(grads[1], 2)[::2], params[1]):
        grads[1] = bad
        before = snapshot(opt)
        with pytest.raises((TypeError, ValueError), match=r"grads\[1\]"):
            opt.step(grads)
        assert_unchanged(before, snapshot(opt))
    grads[1] = kept
    opt.step(grads)
    assert opt._steps == [4, 4, 4]


@pytest.mark.parametrize("cfg", SOME, ids=config_id)
def test_bad_nested_grads_for_groups(cfg, compiled):
    name, hyper = cfg
    rng = np.random.default_rng(3)
    params = make_params(rng, SHAPES, np.float64)
    opt = getattr(fastopt, name)([{"params": params[:1]}, {"params": params[1:], "lr": 0.001}],
                                 backend=compiled, **hyper)
    grads = mixed_grads(rng, SHAPES, np.float64)
    opt.step([grads[:1], grads[1:]])
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"grads\[1\] has 1 arrays; group 1 has 2 parameters"):
        opt.step([grads[:1], grads[1:2]])
    with pytest.raises(ValueError, match=r"grads\[2\] has shape"):
        opt.step([grads[:1], [grads[1], grads[1]]])
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float32"):
        opt.step([[grads[0].astype(np.float32)], grads[1:]])
    with pytest.raises(ValueError, match=r"expected 3 gradients"):
        opt.step([grads[:1], grads[1:], [], []])
    with pytest.raises(TypeError, match=r"grads\[0\] must be a numpy.ndarray, got list"):
        opt.step([grads[:1], grads[1:], []])  # three items for three params: read as a flat list
    assert_unchanged(before, snapshot(opt))


def test_single_array_optimizer_rejects_bad_single_grad(compiled):
    p = np.arange(6.0)
    opt = fastopt.Adam(p, backend=compiled)
    opt.step(np.ones(6))
    before = snapshot(opt)
    for bad, exc, match in [(np.ones(5), ValueError, r"grads\[0\] has shape \(5,\)"),
                            (np.ones(6, np.float32), TypeError, r"grads\[0\] has dtype float32"),
                            (p, ValueError, r"grads\[0\] overlaps params 0"),
                            (opt.state[0]["exp_avg"], ValueError, r"grads\[0\] overlaps optimizer state"),
                            ([np.ones(6), np.ones(6)], ValueError, r"expected 1 gradients")]:
        with pytest.raises(exc, match=match):
            opt.step(bad)
    assert_unchanged(before, snapshot(opt))


# ---------------------------------------------------------------------------- params at construction
def _readonly():
    a = np.ones(4)
    a.flags.writeable = False
    return a


_base = np.zeros(20)
BAD_PARAMS = [
    ("read-only", lambda ok: [ok, _readonly()], ValueError, r"params\[1\] is read-only"),
    ("strided", lambda ok: [np.ones(10)[::2], ok], ValueError, r"params\[0\] is not C-contiguous"),
    ("fortran", lambda ok: [ok, np.asfortranarray(np.ones((3, 2)))], ValueError,
     r"params\[1\] is not C-contiguous"),
    ("int", lambda ok: [ok, np.ones(3, np.int64)], TypeError, r"params\[1\] has dtype int64.*float32 and float64"),
    ("float16", lambda ok: [np.ones(3, np.float16)], TypeError, r"params\[0\] has dtype float16"),
    ("complex", lambda ok: [np.ones(3, np.complex128)], TypeError, r"params\[0\] has dtype complex128"),
    ("python-list", lambda ok: [ok, [1.0, 2.0]], TypeError, r"params\[1\] must be a numpy.ndarray, got list"),
    ("np.matrix", lambda ok: [ok, np.asmatrix(np.ones((2, 3)))], TypeError, r"params\[1\] is a numpy.matrix"),
    ("np.matrix-empty", lambda ok: [np.asmatrix(np.ones((0, 3)))], TypeError, r"params\[0\] is a numpy.matrix"),
    ("masked", lambda ok: [np.ma.masked_array(np.ones(3))], TypeError, r"params\[0\] is a numpy.ma"),
    ("big-endian", lambda ok: [np.ones(3, ">f8")], TypeError, r"params\[0\] has dtype >f8"),
    ("list-of-floats", lambda ok: [1.0, 2.0], TypeError, r"params\[0\] must be a numpy.ndarray, got float"),
    ("string", lambda ok: "abc", TypeError, r"must be a numpy.ndarray, got str"),
    ("none", lambda ok: None, TypeError, r"params must be an array, a list of arrays or a list of dicts, got NoneType"),
    ("dict", lambda ok: {"params": [ok]}, TypeError, r"params must be .* got a dict"),
    ("empty", lambda ok: [], ValueError, r"empty parameter list"),
    ("same-array-twice", lambda ok: [ok, ok], ValueError, r"parameters overlap in memory"),
    ("overlapping-views", lambda ok: [_base[:12], _base[10:]], ValueError, r"parameters overlap in memory"),
    ("view-inside-other", lambda ok: [_base, _base[5:7]], ValueError, r"parameters overlap in memory"),
    ("same-array-two-groups", lambda ok: [{"params": [ok]}, {"params": [ok]}], ValueError,
     r"parameters overlap in memory"),
    ("mixing-dicts-and-arrays", lambda ok: [ok, {"params": [np.ones(2)]}], TypeError,
     r"params mixes arrays and group dicts"),
    ("group-without-params", lambda ok: [{"lr": 0.1}], TypeError, r"'params' entry"),
    ("unknown-hyperparameter", lambda ok: [{"params": [ok], "learning_rate": 0.1}], TypeError,
     r"unexpected hyperparameters \['learning_rate'\]"),
    ("bad-group-hyperparameter", lambda ok: [{"params": [ok]}, {"params": [np.ones(2)], "lr": -1.0}], ValueError,
     r"learning rate \(param_groups\[1\] lr\).*-1\.0"),
]


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[c[0] for c in BAD_PARAMS])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_bad_params_at_construction(case, name, compiled):
    _, make, exc, match = case
    ok = np.arange(5.0)
    _base[:] = np.arange(20.0)
    arg = make(ok)
    arrays = [ok, _base]
    before = [_bits(a) for a in arrays]
    with pytest.raises(exc, match=match):
        getattr(fastopt, name)(arg, backend=compiled)
    assert [_bits(a) for a in arrays] == before


@pytest.mark.parametrize("cfg", SOME, ids=config_id)
def test_add_param_group_checks_before_changing_anything(cfg, compiled):
    opt, params, grads = build(cfg, compiled)
    opt.step(grads)
    state_name = a_state_name(opt)
    cases = [({"params": [params[1]]}, ValueError, r"parameters overlap in memory"),
             ({"params": [params[0].reshape(-1)[2:5]]}, ValueError, r"parameters overlap in memory"),
             ({"params": [np.ones(3), np.ones(2, np.int32)]}, TypeError, r"has dtype int32"),
             ({"params": [np.ones(3)], "bogus": 1}, TypeError, r"unexpected hyperparameters \['bogus'\]"),
             ({"params": [np.ones(3)], "lr": math.nan}, ValueError, r"lr\).*NaN"),
             ([np.ones(3)], TypeError, r"param_group must be a dict")]
    if state_name is not None:  # a new param must not alias the optimizer's own state either
        cases.append(({"params": [opt.state[1][state_name]]}, ValueError, r"optimizer state"))
    for group, exc, match in cases:
        before = snapshot(opt)
        with pytest.raises(exc, match=match):
            opt.add_param_group(group)
        assert_unchanged(before, snapshot(opt))
    opt.step(grads)  # still consistent
    assert len(opt.param_groups) == 1


# ---------------------------------------------------------------------------- hyperparameters
# (optimizer, key, bad value, exception, match); match names the argument and the problem
BAD_HYPER = [
    ("SGD", "lr", -0.1, ValueError, r"learning rate \(.*\blr\).*-0\.1.*>= 0"),
    ("Adam", "lr", -1e-3, ValueError, r"learning rate \(.*\blr\).*>= 0"),
    ("Adam", "lr", math.nan, ValueError, r"learning rate \(.*\blr\) is NaN"),
    ("RMSprop", "lr", math.nan, ValueError, r"\blr\) is NaN"),
    ("Adagrad", "lr", "0.1", TypeError, r"learning rate \(.*\blr\) must be a real number"),
    ("Adam", "eps", -1e-8, ValueError, r"epsilon value \(.*\beps\).*>= 0"),
    ("RMSprop", "eps", -1.0, ValueError, r"\beps\).*>= 0"),
    ("Adagrad", "eps", math.nan, ValueError, r"\beps\) is NaN"),
    ("Adam", "betas", (1.0, 0.999), ValueError, r"betas\[0\]\).*1\.0.*< 1"),
    ("Adam", "betas", (0.9, 1.0), ValueError, r"betas\[1\]\).*1\.0.*< 1"),
    ("AdamW", "betas", (-0.1, 0.999), ValueError, r"betas\[0\]\).*-0\.1.*>= 0"),
    ("AdamW", "betas", (0.9, math.nan), ValueError, r"betas\[1\]\) is NaN"),
    ("Adam", "betas", 0.9, TypeError, r"betas must be a pair"),
    ("Adam", "betas", (0.9, 0.99, 0.9), TypeError, r"betas must be a pair"),
    ("Adam", "weight_decay", -0.01, ValueError, r"weight_decay.*>= 0"),
    ("AdamW", "weight_decay", -0.01, ValueError, r"weight_decay.*>= 0"),
    ("SGD", "weight_decay", -1.0, ValueError, r"weight_decay.*>= 0"),
    ("RMSprop", "weight_decay", math.nan, ValueError, r"weight_decay.* is NaN"),
    ("Adagrad", "weight_decay", -1.0, ValueError, r"weight_decay.*>= 0"),
    ("SGD", "momentum", -0.9, ValueError, r"momentum.*-0\.9.*>= 0"),
    ("RMSprop", "momentum", -0.5, ValueError, r"momentum.*>= 0"),
    ("Adagrad", "lr_decay", -0.1, ValueError, r"lr_decay.*>= 0"),
    ("Adagrad", "initial_accumulator_value", -0.1, ValueError, r"initial_accumulator_value.*>= 0"),
    ("RMSprop", "alpha", -0.1, ValueError, r"alpha.*>= 0"),
    ("Adam", "amsgrad", 1, TypeError, r"amsgrad.*must be a bool"),
    ("AdamW", "amsgrad", "yes", TypeError, r"amsgrad.*must be a bool"),
    ("RMSprop", "centered", 1, TypeError, r"centered.*must be a bool"),
    ("SGD", "nesterov", "True", TypeError, r"nesterov.*must be a bool"),
    ("Adam", "maximize", None, TypeError, r"maximize.*must be a bool"),
]
# nesterov needs a momentum and zero dampening (two keys at once)
BAD_NESTEROV = [dict(nesterov=True), dict(nesterov=True, momentum=0.0),
                dict(nesterov=True, momentum=0.9, dampening=0.1)]


def _hyper_id(c):
    return f"{c[0]}-{c[1]}={c[2]!r}"


@pytest.mark.parametrize("case", BAD_HYPER, ids=_hyper_id)
def test_bad_hyperparameter_at_construction(case, compiled):
    name, key, value, exc, match = case
    p = np.ones(4)
    with pytest.raises(exc, match=match):
        getattr(fastopt, name)([p], backend=compiled, **{key: value})
    with pytest.raises(exc, match=match):  # in a group dict too
        getattr(fastopt, name)([{"params": [p], key: value}], backend=compiled)
    np.testing.assert_array_equal(p, 1.0)


@pytest.mark.parametrize("case", BAD_HYPER, ids=_hyper_id)
@pytest.mark.parametrize("stepped", [0, 2])
def test_bad_hyperparameter_edit_raises_at_next_step(case, stepped, compiled):
    name, key, value, exc, match = case
    hyper = next(h for n, h in CONFIGS if n == name and h)
    opt, params, grads = build((name, hyper), compiled)
    for _ in range(stepped):
        opt.step(grads)
    opt.param_groups[0][key] = value
    before = snapshot(opt)
    with pytest.raises(exc, match=match) as info:
        opt.step(grads)
    assert "param_groups[0]" in str(info.value)  # the message says which group is wrong
    with pytest.raises(exc, match=match):  # and again: a failed check is not cached as good
        opt.step(grads)
    assert_unchanged(before, snapshot(opt))


@pytest.mark.parametrize("bad", BAD_NESTEROV, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_bad_nesterov(bad, compiled):
    p = np.ones(4)
    with pytest.raises(ValueError, match=r"Nesterov momentum requires a momentum and zero dampening"):
        fastopt.SGD([p], backend=compiled, **bad)
    opt, params, grads = build(CONFIGS[4], compiled)  # nesterov, momentum 0.9
    opt.step(grads)
    opt.param_groups[0].update({"momentum": 0.0, "dampening": 0.0, **bad})
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"Nesterov.*param_groups\[0\]"):
        opt.step(grads)
    assert_unchanged(before, snapshot(opt))


def test_bad_edit_in_second_group_changes_no_group(compiled):
    rng = np.random.default_rng(5)
    params = make_params(rng, SHAPES, np.float64)
    opt = fastopt.Adam([{"params": params[:2]}, {"params": params[2:]}], backend=compiled)
    grads = mixed_grads(rng, SHAPES, np.float64)
    opt.step(grads)
    opt.param_groups[0]["lr"] = 0.5  # a good edit in group 0 ...
    opt.param_groups[1]["eps"] = -1.0  # ... and a bad one in group 1
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"epsilon value \(param_groups\[1\] eps\)"):
        opt.step(grads)
    assert_unchanged(before, snapshot(opt))


# ---------------------------------------------------------------------------- clipping keywords
BAD_CLIP_KW = [
    (dict(clipnorm=1.0, clipvalue=1.0), r"Only one of clipnorm, clipvalue and global_clipnorm"),
    (dict(clipnorm=1.0, global_clipnorm=1.0), r"Only one of clipnorm, clipvalue and global_clipnorm"),
    (dict(clipvalue=1.0, global_clipnorm=1.0), r"Only one of clipnorm, clipvalue and global_clipnorm"),
    (dict(clipnorm=1.0, clipvalue=1.0, global_clipnorm=1.0), r"Only one of"),
    (dict(clipnorm=0.0), r"clipnorm value: 0\.0 \(must be > 0"),
    (dict(clipnorm=-1.0), r"clipnorm value: -1\.0 \(must be > 0"),
    (dict(clipvalue=0), r"clipvalue value: 0\.0 \(must be > 0"),
    (dict(clipvalue=-0.5), r"clipvalue value: -0\.5"),
    (dict(global_clipnorm=0.0), r"global_clipnorm value: 0\.0"),
    (dict(global_clipnorm=-2.0), r"global_clipnorm value: -2\.0"),
    (dict(global_clipnorm=math.nan), r"global_clipnorm is NaN"),
    (dict(clipnorm=math.nan), r"clipnorm is NaN"),
]


@pytest.mark.parametrize("kw,match", BAD_CLIP_KW, ids=lambda x: str(x))
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_bad_clipping_keywords(kw, match, name, compiled):
    p = np.ones(4)
    with pytest.raises(ValueError, match=match):
        getattr(fastopt, name)([p], backend=compiled, **kw)
    with pytest.raises(TypeError, match=r"clip.*must be a real number"):
        getattr(fastopt, name)([p], backend=compiled, **{next(iter(kw)): "1.0"})
    np.testing.assert_array_equal(p, 1.0)


@pytest.mark.parametrize("kw,match", BAD_CLIP_KW, ids=lambda x: str(x))
def test_bad_clipping_assignments(kw, match):
    """An assignment is checked like the keyword; the one that raises leaves its option as it was."""
    opt = fastopt.SGD([np.ones(4)], lr=0.1)
    with pytest.raises(ValueError, match=match):
        for name, value in kw.items():
            before = getattr(opt, name)
            setattr(opt, name, value)
    assert getattr(opt, name) is before


def test_option_assignments_take_effect_and_fixed_ones_refuse():
    rng = np.random.default_rng(2)
    g = rng.standard_normal(40) * 10
    for name, value in [("clipnorm", 1.0), ("clipvalue", 0.5), ("global_clipnorm", 2.0)]:
        p, q = np.ones(40), np.ones(40)
        late, built = fastopt.Adam([p], lr=0.1), fastopt.Adam([q], lr=0.1, **{name: value})
        late.step([g])  # unclipped, then clipped from the next step on
        built.step([g])
        q[...] = p
        built.load_state_dict(late.state_dict())
        setattr(late, name, value)
        late.step([g])
        built.step([g])
        np.testing.assert_array_equal(p, q, err_msg=name)
        setattr(late, name, None)  # and off again
        assert getattr(late, name) is None
    opt = fastopt.SGD([np.ones(4)], lr=0.1)
    opt.skip_nonfinite = True
    assert opt.step([np.full(4, np.nan)]) is False and opt.skipped_steps == 1
    with pytest.raises(TypeError, match="skip_nonfinite must be a bool"):
        opt.skip_nonfinite = "yes"
    with pytest.raises(ValueError, match="ema_momentum"):
        opt.ema_momentum = 1.5
    for fixed in ("use_ema", "gradient_accumulation_steps"):
        with pytest.raises(AttributeError):
            setattr(opt, fixed, 2 if fixed != "use_ema" else True)


def _grads_for_clip(dtype=np.float64):
    rng = np.random.default_rng(11)
    return [rng.standard_normal(50).astype(dtype) * 10, rng.standard_normal((4, 5)).astype(dtype) * 10]


@pytest.mark.parametrize("max_norm,norm_type,match", [
    (-1.0, 2.0, r"max_norm value: -1\.0 \(must be >= 0"),
    (math.nan, 2.0, r"max_norm is NaN"),
    ("1", 2.0, r"max_norm must be a real number"),
    (1.0, 0.0, r"norm_type must be > 0 or inf, got 0"),
    (1.0, -2.0, r"norm_type must be > 0 or inf, got -2"),
    (1.0, math.nan, r"norm_type is NaN"),
    (1.0, "two", r"norm_type must be a real number"),
])
def test_clip_grad_norm_bad_arguments(max_norm, norm_type, match, compiled):
    grads = _grads_for_clip()
    before = [_bits(g) for g in grads]
    exc = TypeError if isinstance(max_norm, str) or norm_type == "two" else ValueError
    with pytest.raises(exc, match=match):
        fastopt.clip_grad_norm_(grads, max_norm, norm_type=norm_type, backend=compiled)
    assert [_bits(g) for g in grads] == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_read_only_grads_change_nothing(dtype, compiled):
    grads = _grads_for_clip(dtype)
    grads[1].flags.writeable = False
    before = [_bits(g) for g in grads]
    with pytest.raises(ValueError, match=r"grads\[1\] is read-only"):
        fastopt.clip_grad_norm_(grads, 0.1, backend=compiled)
    with pytest.raises(ValueError, match=r"grads\[1\] is read-only"):
        fastopt.clip_grad_value_(grads, 0.1, backend=compiled)
    assert [_bits(g) for g in grads] == before
    assert fastopt.global_norm(grads, backend=compiled) > 0  # the norm alone writes nothing


@pytest.mark.parametrize("cfg", [CONFIGS[2], CONFIGS[7], CONFIGS[14], CONFIGS[17]], ids=config_id)
@pytest.mark.parametrize("clip", [{}, dict(global_clipnorm=1.0)], ids=["noclip", "global_clipnorm"])
def test_read_only_grads(cfg, clip, any_backend):
    """Optimizers only read gradients: read-only arrays (np.asarray of a JAX array, a
    read-only memory map) step on every backend, fused norm included."""
    opt, params, grads = build(cfg, any_backend, **clip)
    plain, _, _ = build(cfg, any_backend, **clip)
    for g in grads:
        g.flags.writeable = False
    for _ in range(2):
        opt.step(grads)
        plain.step([g.copy() for g in grads])
    assert all(s == 2 for s in opt._steps)
    for a, b in zip(opt.param_groups[0]["params"], plain.param_groups[0]["params"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [
    (lambda gs: [gs[0], [1.0, 2.0]], TypeError, r"grads\[1\] must be a numpy.ndarray, got list"),
    (lambda gs: [gs[0], gs[1].astype(np.int32)], TypeError, r"grads\[1\] has dtype int32"),
    (lambda gs: [gs[0], gs[1].astype(np.float16)], TypeError, r"grads\[1\] has dtype float16"),
    (lambda gs: [gs[0], np.asfortranarray(gs[1])], ValueError, r"grads\[1\] is not C-contiguous"),
    (lambda gs: [gs[0][::2], gs[1]], ValueError, r"grads\[0\] is not C-contiguous"),
    (lambda gs: [gs[0], np.asmatrix(gs[1].reshape(1, -1))], TypeError, r"grads\[1\] is a numpy.matrix"),
    (lambda gs: [np.ma.masked_array(gs[0]), gs[1]], TypeError, r"grads\[0\] is a numpy.ma"),
], ids=["list", "int", "float16", "fortran", "strided", "matrix", "masked"])
def test_clip_helpers_bad_grads(bad, compiled):
    make, exc, match = bad
    grads = _grads_for_clip()
    before = [_bits(g) for g in grads]
    for call in (lambda gs: fastopt.clip_grad_norm_(gs, 0.1, backend=compiled),
                 lambda gs: fastopt.clip_grad_value_(gs, 0.1, backend=compiled)):
        with pytest.raises(exc, match=match):
            call(make(grads))
    assert [_bits(g) for g in grads] == before


@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
def test_clip_grad_norm_error_if_nonfinite(bad_value, norm_type, compiled):
    grads = _grads_for_clip()
    grads[1][2, 3] = bad_value
    before = [_bits(g) for g in grads]
    with pytest.raises(RuntimeError, match=r"non-finite"):
        fastopt.clip_grad_norm_(grads, 1.0, norm_type=norm_type, error_if_nonfinite=True, backend=compiled)
    assert [_bits(g) for g in grads] == before


@pytest.mark.parametrize("value,exc,match", [(-1.0, ValueError, r"clip_value value: -1\.0 \(must be >= 0"),
                                             (math.nan, ValueError, r"clip_value is NaN"),
                                             (None, TypeError, r"clip_value must be a real number")])
def test_clip_grad_value_bad_value(value, exc, match, compiled):
    grads = _grads_for_clip()
    before = [_bits(g) for g in grads]
    with pytest.raises(exc, match=match):
        fastopt.clip_grad_value_(grads, value, backend=compiled)
    assert [_bits(g) for g in grads] == before


# ---------------------------------------------------------------------------- backends
def test_unknown_backend_for_an_optimizer():
    p = np.ones(3)
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*'numba'.*'cython'.*'python'"):
        fastopt.Adam([p], backend="nope")
    with pytest.raises(ValueError, match=r"unknown backend 'nope'"):
        fastopt.clip_grad_norm_([p], 1.0, backend="nope")
    np.testing.assert_array_equal(p, 1.0)


def test_unknown_backend_for_set_backend():
    active = fastopt.get_backend()
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*'numba'.*'cython'.*'python'"):
        fastopt.set_backend("nope")
    assert fastopt.get_backend() == active


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_thread_count(n):
    threads = fastopt.get_num_threads()
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive integer"):
        fastopt.set_num_threads(n)
    assert fastopt.get_num_threads() == threads


# ---------------------------------------------------------------------------- bounds
@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request):
    require_backend(request.param)
    return request.param


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_size_zero_and_size_one_params(cfg, dtype, any_backend):
    name, hyper = cfg
    shapes = [(0,), (1,), (1, 1), (0, 3), (1,)]
    rng = np.random.default_rng(6)
    params = make_params(rng, shapes, dtype)
    ref_params = [p.copy() for p in params]
    opt = getattr(fastopt, name)(params, backend=any_backend, **hyper)
    ref = reference.Reference(name, ref_params, **hyper)
    for _ in range(5):
        grads = mixed_grads(rng, shapes, dtype)
        opt.step(grads)
        ref.step(grads)
    for p, r in zip(params, ref_params):
        assert p.shape == r.shape
        np.testing.assert_allclose(p, r, **tolerance(dtype))


P_GUARD = 12345.0  # params' neighbours: must never change
G_GUARD = np.nan   # grads' neighbours: if a kernel read one, a parameter would turn NaN


def _guarded(sizes, dtype, fill, gap=3):
    """Views of the given sizes into one buffer filled with ``fill``, ``gap`` guard elements
    before, between and after them; returns (buffer, views, guard mask)."""
    total = sum(sizes) + gap * (len(sizes) + 1)
    buf = np.full(total, fill, dtype)
    guard = np.ones(total, bool)
    views, at = [], gap
    for n in sizes:
        views.append(buf[at:at + n])
        guard[at:at + n] = False
        at += n + gap
    return buf, views, guard


def _guards_intact(buf, guard, fill):
    g = buf[guard]
    if np.isnan(fill):
        assert np.isnan(g).all(), "a guard element next to a gradient was written"
    else:
        assert (g == np.asarray(fill, buf.dtype)).all(), "a guard element next to a parameter was written"


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [None, dict(global_clipnorm=1.0), dict(clipvalue=0.5)],
                         ids=["noclip", "global_clipnorm", "clipvalue"])
def test_kernels_stay_inside_param_views(cfg, dtype, clip, any_backend):
    """Params and grads are views into bigger buffers with sentinel neighbours: five steps of
    every configuration change nothing outside the views (on both the serial and, for the
    compiled backends, the parallel path) and read nothing outside them either."""
    name, hyper = cfg
    big = 70_001 if any_backend != "python" else 65  # above PARALLEL_THRESHOLD: chunked loops
    sizes = [0, 1, 17, big, 2]
    rng = np.random.default_rng(7)
    pbuf, params, pguard = _guarded(sizes, dtype, P_GUARD)
    gbuf, gviews, gguard = _guarded(sizes, dtype, G_GUARD)
    for p in params:
        p[...] = rng.standard_normal(p.size)
    ref_params = [p.copy() for p in params]
    plain = [p.copy() for p in params]
    clip = clip or {}
    opt = getattr(fastopt, name)(params, backend=any_backend, **hyper, **clip)
    opt_plain = getattr(fastopt, name)(plain, backend=any_backend, **hyper, **clip)
    ref = reference.Reference(name, ref_params, **hyper, **clip)
    for _ in range(5):
        grads = mixed_grads(rng, [(n,) for n in sizes], dtype)
        for gv, g in zip(gviews, grads):
            gv[...] = g
        opt.step(gviews)
        opt_plain.step(grads)
        ref.step(grads)
        _guards_intact(pbuf, pguard, P_GUARD)
        _guards_intact(gbuf, gguard, G_GUARD)
    tol = tolerance(dtype)
    if "global_clipnorm" in clip:
        # fastopt sums the norm over fixed chunks (math.fsum of float64 partials), the reference
        # with np.sum: the clipping scales differ by an ulp or two, and a weight-decay term that
        # nearly cancels the clipped gradient amplifies that to ~1e-12 relative in a few elements
        tol = dict(tol, rtol=max(tol["rtol"], 1e-10))
    for p, q, r in zip(params, plain, ref_params):
        assert np.isfinite(p).all()
        np.testing.assert_array_equal(p, q)  # views in a bigger buffer change no bit
        np.testing.assert_allclose(p, r, **tol)


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_empty", [False, True], ids=["", "with-empty"])
def test_merged_flatten_runs_stay_inside(cfg, dtype, with_empty, any_backend):
    """Params are the middle views of one ``flatten`` buffer (sentinel arrays before and
    after them), grads likewise: they step in merged kernel calls, which touch neither
    sentinel, and give the same bits as separate arrays."""
    name, hyper = cfg
    big = 70_001 if any_backend != "python" else 40
    shapes = [(3, 5), (1,), (big,), (2, 2)]
    if with_empty:
        shapes.insert(1, (0,))
    rng = np.random.default_rng(8)
    arrays = make_params(rng, shapes, dtype)
    sentinel = [np.full(5, P_GUARD, dtype), np.full(7, P_GUARD, dtype)]
    pflat, pviews = fastopt.flatten([sentinel[0], *arrays, sentinel[1]])
    gflat, gviews = fastopt.flatten([np.full(5, np.nan, dtype), *[np.zeros(s, dtype) for s in shapes],
                                     np.full(7, np.nan, dtype)])
    params, grads = pviews[1:-1], gviews[1:-1]
    separate = [a.copy() for a in arrays]
    opt = getattr(fastopt, name)(params, backend=any_backend, **hyper)
    opt_sep = getattr(fastopt, name)(separate, backend=any_backend, **hyper)
    for _ in range(5):
        gs = mixed_grads(rng, shapes, dtype)
        for gv, g in zip(grads, gs):
            gv[...] = g
        opt.step(grads)
        opt_sep.step(gs)
        assert (pviews[0] == P_GUARD).all() and (pviews[-1] == P_GUARD).all()
        assert np.isnan(gviews[0]).all() and np.isnan(gviews[-1]).all()
    if not with_empty:  # (per-array rules: one call per view)
        assert len(opt._plan.calls) == (len(shapes) if opt.per_array else 1), \
            "the flatten views should step in one kernel call"
    assert all(s == 5 for s in opt._steps)
    for p, s in zip(params, separate):
        np.testing.assert_array_equal(p, s)


def test_global_norm_of_a_matrix_raises_instead_of_a_wrong_norm(compiled):
    a, b = np.arange(6.0).reshape(2, 3), np.ones(4)
    with pytest.raises(TypeError, match=r"grads\[0\] is a numpy.matrix"):
        fastopt.global_norm([np.asmatrix(a), b], backend=compiled)
    assert fastopt.global_norm([np.asarray(np.asmatrix(a)), b], backend=compiled) == pytest.approx(
        math.sqrt((a ** 2).sum() + 4), rel=1e-15)


@pytest.mark.parametrize("cfg", SOME, ids=config_id)
def test_memmap_params_and_grads_step_as_their_arrays(cfg, compiled, tmp_path):
    """np.memmap, the ndarray subclass users pass for arrays bigger than RAM, steps exactly as
    the same values in plain arrays."""
    name, hyper = cfg
    rng = np.random.default_rng(5)

    def mapped_copies(arrays, prefix):
        out = []
        for k, a in enumerate(arrays):
            m = np.memmap(tmp_path / f"{prefix}{k}.bin", dtype=a.dtype, mode="w+", shape=a.shape)
            m[...] = a
            out.append(m)
        return out
    plain = make_params(rng, SHAPES, np.float64)
    mapped = mapped_copies(plain, "p")
    o1 = getattr(fastopt, name)(plain, backend=compiled, **hyper)
    o2 = getattr(fastopt, name)(mapped, backend=compiled, **hyper)
    for _ in range(3):
        grads = mixed_grads(rng, SHAPES, np.float64)
        o1.step(grads)
        o2.step(mapped_copies(grads, "g"))
    for a, m in zip(plain, mapped):
        np.testing.assert_array_equal(np.asarray(m), a)


# ---------------------------------------------------------------------------- found by tests/test_contract_fuzz.py
@pytest.mark.parametrize("name,key", [("SGD", "lr"), ("SGD", "dampening"), ("Adam", "betas"), ("RMSprop", "alpha"),
                                      ("NAdam", "betas"), ("Adafactor", "eps"), ("ScheduleFreeSGD", "b1")])
def test_deleted_group_key_raises_value_error_naming_it(name, key, compiled):
    """``del opt.param_groups[0][key]`` then a step: a ValueError naming the key (was a KeyError
    from inside the check), nothing changed, and the step works once the key is back."""
    opt, params, grads = build((name, {}), compiled)
    opt.step(grads)
    value = opt.param_groups[0][key]
    del opt.param_groups[0][key]
    before = snapshot(opt) if name != "NAdam" else None  # NAdam's state reads its groups
    with pytest.raises(ValueError, match=rf"param_groups\[0\] has no '{key}'"):
        opt.step(grads)
    if before is not None:
        assert_unchanged(before, snapshot(opt))
    assert opt._steps == [1, 1, 1]
    opt.param_groups[0][key] = value
    opt.step(grads)
    assert opt._steps == [2, 2, 2]


@pytest.mark.parametrize("entry", [1.5, [], None, "state"])
def test_load_state_dict_entry_not_a_dict(entry, compiled):
    """A state entry that is not a dict: a TypeError naming it (was "'float' object is not
    iterable" from building the message)."""
    opt, params, grads = build(CONFIGS[7], compiled)
    opt.step(grads)
    sd = opt.state_dict()
    sd["state"][1] = entry
    before = snapshot(opt)
    with pytest.raises(TypeError, match=r"state_dict\['state'\]\[1\] must be a dict"):
        opt.load_state_dict(sd)
    assert_unchanged(before, snapshot(opt))


@pytest.mark.parametrize("arrays,kwargs,exc,match", [
    ([np.ones(2)], dict(dtype=object), TypeError, r"dtype must be a numeric dtype.*got object"),
    ([np.ones(2)], dict(dtype=">f8"), TypeError, r"dtype must be a numeric dtype in native byte order"),
    ([np.ones(2)], dict(dtype="nope"), TypeError, r"dtype 'nope' is not a NumPy dtype"),
    ([np.ones(2), np.ma.masked_array(np.ones(3), mask=[1, 0, 0])], {}, TypeError, r"arrays\[1\] is a numpy.ma"),
    ([np.ones(2), np.ones(2, dtype=object)], {}, TypeError, r"arrays\[1\] has dtype object"),
    ([np.ones(2), np.array(["a", "b"])], {}, TypeError, r"arrays\[1\] has dtype <U1"),
    ([np.ones(2), [[1.0], [1.0, 2.0]]], {}, ValueError, r"arrays\[1\] is not an array of numbers"),
    ([np.ones(2), np.ones(2) + 1j], dict(dtype=np.float32), TypeError, r"arrays\[1\] has dtype complex128.*float32"),
    ([np.arange(2), np.full(2, 1.5)], dict(dtype=np.int64), TypeError, r"arrays\[1\] has dtype float64.*int64"),
    ("abc", {}, TypeError, r"arrays must be a sequence of arrays, got str"),
    (3.0, {}, TypeError, r"arrays must be a sequence of arrays, got float"),
])
def test_flatten_rejects_what_it_cannot_pack(arrays, kwargs, exc, match):
    """flatten names the argument (before: numpy's messages, a big-endian buffer, a masked
    array's mask or a complex part silently dropped)."""
    with pytest.raises(exc, match=match):
        fastopt.flatten(arrays, **kwargs)


def test_flatten_still_takes_array_likes():
    flat, views = fastopt.flatten([[1, 2], np.float32(3.0), np.arange(4, dtype=np.int32).reshape(2, 2),
                                   np.ones(2, ">f4"), np.asarray(np.asmatrix([[5.0, 6.0]]))])
    assert flat.dtype == np.float64 and flat.dtype.isnative
    np.testing.assert_array_equal(flat, [1, 2, 3, 0, 1, 2, 3, 1, 1, 5, 6])
    assert [v.shape for v in views] == [(2,), (), (2, 2), (2,), (1, 2)]
    flat, _ = fastopt.flatten([np.ones(2), np.arange(3)], dtype=np.float32)  # within a kind, and int -> float
    assert flat.dtype == np.float32


@pytest.mark.parametrize("convention", ["torch", "keras"])
@pytest.mark.parametrize("step", [2**40, 2**62, 10**100])
def test_nadam_loads_a_huge_step_count_at_once(convention, step, compiled):
    """NAdam recomputes its momentum product from the step count: a state_dict with step 10**100
    used to loop (forever) multiplying it out; now it loads at once and steps finitely."""
    opt, params, grads = build(("NAdam", dict(convention=convention)), compiled)
    opt.step(grads)
    sd = opt.state_dict()
    sd["state"][0]["step"] = step
    opt.load_state_dict(sd)
    opt.step(grads)
    assert opt.state[0]["step"] == step + 1
    assert opt.state[0]["mu_product" if convention == "torch" else "u_product"] == 0.0
    assert all(np.isfinite(p).all() for p in params)


def test_nadam_product_unchanged_for_realistic_steps():
    """The fast path only starts a million steps ahead: loading any step below it gives the bits
    of the step-by-step product."""
    from fastopt.optimizers.nadam import _RunningProduct
    for keras in (False, True):
        a, b = _RunningProduct(keras, 0.9, 4e-3), _RunningProduct(keras, 0.9, 4e-3)
        for t in range(1, 3000):
            a(t)
        assert b(2999) == a(2999) and b(500) == a(500)


@pytest.mark.parametrize("grads", [None, 1.0, "grads", {0: np.ones(2)}])
def test_clip_helpers_name_grads_that_are_no_list(grads, compiled):
    """Was "'NoneType' object is not iterable" (or a message about grads[0] of a string)."""
    for call in (lambda: fastopt.clip_grad_norm_(grads, 1.0, backend=compiled),
                 lambda: fastopt.clip_grad_value_(grads, 1.0, backend=compiled),
                 lambda: fastopt.global_norm(grads, backend=compiled)):
        with pytest.raises(TypeError, match=r"grads must be an array or a list of arrays, got"):
            call()


@pytest.mark.parametrize("make", [lambda g: [g[0], g[1], g[0]], lambda g: [g[0], g[0].reshape(-1)[5:20]]],
                         ids=["same-array-twice", "overlapping-views"])
def test_clip_grad_norm_rejects_aliased_grads(make, compiled):
    """An array given twice was counted twice in the norm and then scaled twice (by the square
    of the factor); now a ValueError naming both, before anything is written."""
    grads = _grads_for_clip()
    before = [_bits(g) for g in grads]
    with pytest.raises(ValueError, match=r"grads\[\d\] shares memory with grads\[\d\]"):
        fastopt.clip_grad_norm_(make(grads), 0.1, backend=compiled)
    assert [_bits(g) for g in grads] == before
    # the helpers that scale nothing, or clamp (idempotent), still take it
    assert fastopt.global_norm(make(grads), backend=compiled) > 0
    fastopt.clip_grad_value_(make(grads), 0.1, backend=compiled)
    assert max(np.abs(g).max() for g in make(grads)) <= 0.1
