"""The child side of tests/test_contract_fuzz.py: builds a case from its picklable description,
runs the fastopt calls and reports what happened, so that a crash kills this process, not pytest.

``run_case(case)`` returns a dict: ``outcome`` ("ok", "raised" or "skip"), for "raised" the
exception's ``exc`` name, ``contract_exc`` (whether it is a TypeError/ValueError/CheckpointError)
and ``message``; ``changed`` (what a raising call changed anyway: empty when the contract holds);
``mismatch`` (how an accepted call differs from fastopt.reference, or None); ``note``.
``serve(conn)`` answers cases sent over a multiprocessing Pipe until it gets None.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import tempfile
import traceback

import numpy as np

import fastopt
from fastopt import reference
from fastopt.checkpoint import CheckpointError
from fastopt.reference import keras_clip

CONTRACT_ERRORS = (TypeError, ValueError, CheckpointError)
CLIP_KEYS = ("clipnorm", "clipvalue", "global_clipnorm")
_TMP = tempfile.mkdtemp(prefix="fastopt-fuzz-")


class Sub(np.ndarray):
    """An ndarray subclass of no library: fastopt must refuse it."""


class ArrayLike:
    """An object with ``__array__`` only (as other libraries' arrays have)."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


# ---------------------------------------------------------------------------- odd arrays
def odd(a, how, rng, others=()):
    """``a`` (a good array) turned into the odd value ``how``; ``others`` are arrays of the same
    role (an earlier gradient, a parameter) some variants reuse."""
    if how == "ok":
        return a
    if how == "copy":
        return a.copy()
    if how == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if how == "memmap":
        m = np.memmap(os.path.join(_TMP, f"m{rng.integers(1 << 62)}.bin"), dtype=a.dtype, mode="w+",
                      shape=a.shape if a.size else (1,))
        if not a.size:
            return a.copy()  # a memmap cannot be empty
        m[...] = a
        return m
    if how == "matrix":
        return np.asmatrix(a if a.ndim == 2 else a.reshape(1, -1))
    if how == "masked":
        return np.ma.masked_array(a.copy(), mask=(np.arange(a.size) % 2 == 0).reshape(a.shape))
    if how == "subclass":
        return a.copy().view(Sub)
    if how == "arraylike":
        return ArrayLike(a.copy())
    if how == "object":
        return a.astype(object)
    if how == "bigendian":
        return a.astype(a.dtype.newbyteorder(">"))
    if how in ("int64", "int32", "bool", "complex128", "float16"):
        return a.astype(how)
    if how == "otherfloat":
        return a.astype(np.float32 if a.dtype == np.float64 else np.float64)
    if how == "strided":
        b = np.empty(a.shape + (2,), a.dtype)
        b[..., 0] = a
        return b[..., 0]
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "reversed":
        return a.reshape(-1)[::-1].reshape(a.shape) if a.size > 1 else a.copy()
    if how == "list":
        return a.tolist()
    if how == "pyfloat":
        return 1.0
    if how == "zerodim":
        return np.array(0.5, a.dtype)
    if how == "none":
        return None
    if how in ("nan", "inf", "-inf"):
        b = a.copy()
        if b.size:
            b.reshape(-1)[rng.integers(b.size)] = float(how)
        return b
    if how == "huge":
        return np.full_like(a, np.finfo(a.dtype).max / 4)
    if how == "wrong_shape":
        return a.reshape(-1).copy() if a.ndim > 1 else a.reshape(1, -1).copy()
    if how == "wrong_length":
        return np.zeros(a.size + 1, a.dtype)
    if how == "same_as_other":
        return next((o for o in others if isinstance(o, np.ndarray) and o.shape == a.shape
                     and o.dtype == a.dtype), a)
    raise AssertionError(how)


def _plain(x):
    return type(x) in (np.ndarray, np.memmap)


def good_grad(g, p, others):
    """Whether the README's rules take ``g`` as the gradient of parameter ``p``: None, or a plain
    array (or memmap) of p's dtype and shape, C-contiguous, sharing no memory with ``others``
    (the parameters and the optimizer's state)."""
    if g is None:
        return True
    return (_plain(g) and g.dtype == p.dtype and g.shape == p.shape and g.flags.c_contiguous
            and not any(np.shares_memory(g, o) for o in others))


def good_param(a):
    return (_plain(a) and a.dtype in (np.dtype(np.float32), np.dtype(np.float64)) and a.flags.c_contiguous
            and a.flags.writeable)


# ---------------------------------------------------------------------------- snapshots
def _bits(a):
    return (type(a).__name__, a.dtype.str, a.shape, a.tobytes())


def _value(v):
    if isinstance(v, np.ndarray):
        return _bits(v)
    return repr(v)


def snapshot(opt, arrays=()):
    """Every bit of an optimizer a call may change, and of ``arrays`` (what the call was given)."""
    snap = {"n_groups": len(opt.param_groups)}
    for g, group in enumerate(opt.param_groups):
        ps = group.get("params")
        snap[f"param_groups[{g}] params"] = [id(p) for p in ps] if isinstance(ps, list) else repr(ps)
        snap[f"param_groups[{g}] hyper"] = repr({k: v for k, v in group.items() if k != "params"})
    for i, p in enumerate(opt._params):
        snap[f"params[{i}]"] = _bits(p.array)
        for k, v in p.states.items():
            snap[f"state[{i}][{k!r}] (buffer)"] = _bits(v)
    try:
        state = opt.state
    except Exception as e:  # a bad edit of a group is reported by ``state`` too (scalar states)
        state = []
        snap["state"] = f"raises {type(e).__name__}"
    for i, s in enumerate(state):
        for k, v in s.items():
            snap[f"state[{i}][{k!r}]"] = _value(v)
    snap["steps"] = list(opt._steps)
    snap["calls"] = opt._calls
    snap["skipped_steps"] = opt.skipped_steps
    for k in ("clipnorm", "clipvalue", "global_clipnorm", "skip_nonfinite", "ema_momentum"):
        snap[k] = repr(getattr(opt, k))
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            snap[f"argument {i}"] = _bits(a)
    return snap


def array_snapshot(arrays):
    return {f"argument {i}": _bits(a) for i, a in enumerate(arrays) if isinstance(a, np.ndarray)}


def diff(before, after):
    keys = sorted(set(before) | set(after))
    return [k for k in keys if before.get(k) != after.get(k)]


# ---------------------------------------------------------------------------- the reference
def rule_key(name, hyper):
    """The ``fastopt.reference.STEPS`` key of class ``name`` with ``hyper``, and the rule's hyper."""
    hyper = dict(hyper)
    convention = hyper.pop("convention", "keras" if name == "Nadam" else "torch")
    name = "NAdam" if name == "Nadam" else name
    return (name if convention == "torch" else f"{name}:{convention}"), hyper


def plain_hyper(hyper):
    """The hyperparameters as the reference takes them: Python numbers, tuples of them."""
    def conv(v):
        if isinstance(v, (bool, np.bool_, str)) or v is None:
            return bool(v) if isinstance(v, np.bool_) else v
        if isinstance(v, (list, tuple, np.ndarray)) and np.ndim(v) == 1:
            return tuple(conv(x) for x in v)
        return float(v) if isinstance(v, (float, np.floating)) else (int(v) if isinstance(v, (int, np.integer))
                                                                      else v)
    return {k: conv(v) for k, v in hyper.items()}


_GROUP_DEFAULTS = {}


def group_defaults(name, convention):
    """A group's hyperparameters of class ``name`` built with its defaults under ``convention``."""
    key = (name, convention)
    if key not in _GROUP_DEFAULTS:
        kw = {"convention": convention} if "convention" in inspect.signature(getattr(fastopt, name)).parameters else {}
        group = getattr(fastopt, name)([np.zeros(1)], **kw).param_groups[0]
        _GROUP_DEFAULTS[key] = {k: v for k, v in group.items() if k != "params"}
    return _GROUP_DEFAULTS[key]


def rule_of(name, hyper):
    """(update function, its keyword arguments, unmodelled) of class ``name`` with ``hyper``. The
    keys the reference's function does not take are left out: a group's options of the other
    convention at their defaults, which change nothing; any other value of one is ``unmodelled``
    (fastopt's extension: no reference to compare with)."""
    key, rule = rule_key(name, plain_hyper(hyper))
    update = reference.STEPS[key]
    accepted = inspect.signature(update).parameters
    inert = group_defaults(name, hyper.get("convention", "keras" if name == "Nadam" else "torch"))
    unmodelled = [k for k, v in rule.items() if k not in accepted and not (k in inert and repr(inert[k]) == repr(v))]
    return update, {k: v for k, v in rule.items() if k in accepted}, unmodelled


class Ref:
    """fastopt.reference over parameter groups, with the Keras clipping keywords, skip_nonfinite and
    None gradients (skipped, as in torch)."""

    def __init__(self, name, groups, options):
        self.groups = []
        self.unmodelled = []
        for hyper, params in groups:
            self.add_group(name, hyper, [p.copy() for p in params], [{} for _ in params])
        self.clip = {k: options[k] for k in CLIP_KEYS if options.get(k) is not None}
        self.skip_nonfinite = bool(options.get("skip_nonfinite"))

    def add_group(self, name, hyper, params, states, at=None):
        update, rule, unmodelled = rule_of(name, hyper)
        self.unmodelled += unmodelled
        if at is None:
            self.groups.append((update, rule, params, states))
        else:
            self.groups[at] = (update, rule, params, states)

    @property
    def params(self):
        return [p for _, _, ps, _ in self.groups for p in ps]

    @property
    def states(self):
        return [s for _, _, _, ss in self.groups for s in ss]

    def step(self, grads):
        slots = [(update, rule, p, s) for update, rule, ps, ss in self.groups for p, s in zip(ps, ss)]
        present = [(slot, np.asarray(g, slot[2].dtype)) for slot, g in zip(slots, grads) if g is not None]
        gs = [g for _, g in present]
        if self.skip_nonfinite and not math.isfinite(
                math.fsum(float(np.sum(np.square(g.astype(np.float64)))) for g in gs)):
            return False
        if self.clip:
            gs = keras_clip(gs, **self.clip)
        for ((update, rule, p, s), _), g in zip(present, gs):
            update(p, g, s, **rule)
        return True


def verdict(opt, ref, dtype, loose=False):
    """None, or how the optimizer's params differ from the reference's (None too where the
    reference cannot follow: a hyperparameter it does not model)."""
    if ref.unmodelled:
        return None
    return compare([p.array for p in opt._params], ref.params, dtype, loose, per_array=opt.per_array)


def compare(params, ref_params, dtype, loose=False, per_array=False):
    """None, or how fastopt's params differ from the reference's (NaN-aware). ``per_array``: a
    rule with per-array norms/RMS (Lamb, LARS, Adafactor), summed in another order in float32."""
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    if per_array and dtype == np.float32:
        tol = dict(rtol=1e-5, atol=1e-6)
    if loose:  # chunked float64 norms against np.sum: an ulp in the clip scale, amplified by decay
        tol = dict(rtol=max(tol["rtol"], 1e-10), atol=tol["atol"])
    for i, (p, r) in enumerate(zip(params, ref_params)):
        p = np.asarray(p)
        if p.shape != r.shape:
            return f"params[{i}] has shape {p.shape}, the reference's {r.shape}"
        try:
            np.testing.assert_allclose(p, r, equal_nan=True, **tol)
        except AssertionError as e:
            return f"params[{i}] differs from the reference: {str(e).strip()[:600]}"
    return None


# ---------------------------------------------------------------------------- building
def make_arrays(rng, shapes, dtype, scale=1.0):
    return [np.asarray(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]


def build_params(case, rng):
    return make_arrays(rng, [tuple(s) for s in case["shapes"]], np.dtype(case["dtype"]))


def group_split(params, n_groups):
    """``params`` split into ``n_groups`` consecutive groups (the last takes the rest)."""
    if n_groups == 1:
        return [params]
    k = max(1, len(params) // n_groups)
    return [params[:k], params[k:]]


def construct(case, params, hyper=None, options=None):
    """The case's optimizer over ``params`` (groups per case["group_hyper"])."""
    hyper = case["hyper"] if hyper is None else hyper
    options = case.get("options", {}) if options is None else options
    cls = getattr(fastopt, case["name"])
    groups = case.get("group_hyper")
    if groups:
        arg = [{"params": ps, **gh} for ps, gh in zip(group_split(params, len(groups)), groups)]
    else:
        arg = params
    return cls(arg, backend=case["backend"], **hyper, **options)


def ref_for(case, params, hyper=None, options=None, group_hyper=None):
    hyper = case["hyper"] if hyper is None else hyper
    options = case.get("options", {}) if options is None else options
    group_hyper = case.get("group_hyper") if group_hyper is None else group_hyper
    if group_hyper:
        groups = [({**hyper, **gh}, ps) for ps, gh in zip(group_split(params, len(group_hyper)), group_hyper)]
    else:
        groups = [(hyper, params)]
    return Ref(case["name"], groups, options)


def good_grads(rng, params, scale=1.0):
    return [np.asarray(rng.standard_normal(p.shape) * scale).astype(p.dtype) for p in params]


def _raised(e, changed, note=""):
    return {"outcome": "raised", "exc": f"{type(e).__module__}.{type(e).__qualname__}",
            "contract_exc": isinstance(e, CONTRACT_ERRORS), "message": str(e), "changed": changed,
            "mismatch": None, "note": note, "traceback": traceback.format_exc()[-2500:]}


def _ok(mismatch=None, note=""):
    return {"outcome": "ok", "mismatch": mismatch, "changed": [], "note": note}


def _loose(options):
    return options.get("global_clipnorm") is not None or options.get("clipnorm") is not None


# ---------------------------------------------------------------------------- the cases
def case_construct(case, rng):
    """A constructor with random (maybe bad) hyperparameters, options and params; when it works,
    two steps against the reference."""
    params = build_params(case, rng)
    args = list(params)
    for i, how in case.get("param_odd", {}).items():
        args[i] = odd(params[i], how, rng, others=params[:i])
    expect = None
    if not all(good_param(a) for a in args) or any(
            np.shares_memory(a, b) for i, a in enumerate(args) for b in args[:i] if _plain(a) and _plain(b)):
        expect = "reject"
    before = array_snapshot(args)
    try:
        opt = construct(case, args)
    except Exception as e:
        return {**_raised(e, diff(before, array_snapshot(args))), "expect": expect}
    if expect:
        return {**_ok(), "expect": expect}
    options = case.get("options", {})
    if options.get("gradient_accumulation_steps") is not None:
        return _ok(note="accumulation: not compared")
    arrays = [np.asarray(a) for a in args]
    ref = ref_for(case, arrays)
    mismatch = None
    with np.errstate(all="ignore"):
        for _ in range(2):
            gs = good_grads(rng, arrays)
            opt.step(gs)
            ref.step(gs)
        mismatch = verdict(opt, ref, np.dtype(case["dtype"]), _loose(options))
    return _ok(mismatch)


def _warm(case, rng):
    params = build_params(case, rng)
    opt = construct(case, params)
    ref = ref_for(case, params)
    with np.errstate(all="ignore"):
        for _ in range(case.get("warm", 0)):
            gs = good_grads(rng, params)
            opt.step(gs)
            ref.step(gs)
    return opt, ref, params


def _then_good_step(opt, ref, rng, case, mismatch):
    """After the call under test, one good step more: a half-changed state shows up here."""
    if mismatch is None:
        with np.errstate(all="ignore"):
            gs = good_grads(rng, ref.params)
            try:
                opt.step(gs)
            except Exception as e:
                return f"a good step after it raised {type(e).__name__}: {e}"
            ref.step(gs)
            mismatch = verdict(opt, ref, np.dtype(case["dtype"]),
                               _loose(case.get("options", {})))
            if mismatch:
                mismatch = "after one more good step: " + mismatch
    return mismatch


def case_step(case, rng):
    """``step`` with odd gradients after ``warm`` good steps."""
    opt, ref, params = _warm(case, rng)
    grads = good_grads(rng, params)
    odd_grads = list(grads)
    for i, how in case["grad_odd"].items():
        if how == "param":
            odd_grads[i] = opt._params[i].array
        elif how == "state":
            names = [k for k, v in opt.state[i].items() if isinstance(v, np.ndarray) and v.size]
            odd_grads[i] = opt.state[i][names[0]] if names else grads[i]
        else:
            odd_grads[i] = odd(grads[i], how, rng, others=odd_grads[:i])
    whole = case.get("whole")
    arg = odd_grads
    if whole == "short":
        arg = odd_grads[:-1]
    elif whole == "long":
        arg = odd_grads + [odd_grads[0]]
    elif whole == "tuple":
        arg = tuple(odd_grads)
    elif whole == "generator":
        arg = (g for g in odd_grads)
    elif whole == "dict":
        arg = dict(enumerate(odd_grads))
    elif whole == "single":
        arg = odd_grads[0]
    elif whole == "none":
        arg = None
    elif whole == "nested" and len(opt.param_groups) > 1:
        sizes = [len(g["params"]) for g in opt.param_groups]
        arg = [odd_grads[:sizes[0]], odd_grads[sizes[0]:]]
    owned = [p.array for p in opt._params] + [v for p in opt._params for v in p.states.values() if v.size]
    ok = all(good_grad(g, p.array, owned) for g, p in zip(odd_grads, opt._params))
    if whole in ("short", "long", "generator", "dict", "none") or (whole == "single" and len(odd_grads) > 1):
        ok = False
    expect = "accept" if ok else "reject"
    before = snapshot(opt, odd_grads)
    try:
        with np.errstate(all="ignore"):
            applied = opt.step(arg)
    except Exception as e:
        return {**_raised(e, diff(before, snapshot(opt, odd_grads))), "expect": expect}
    if expect == "reject":
        return {**_ok(), "expect": expect}
    changed = [k for k in diff(before, snapshot(opt, odd_grads)) if k.startswith("argument")]
    if changed:
        return {**_ok(f"step wrote its gradients: {changed}"), "changed": changed}
    with np.errstate(all="ignore"):
        ref_applied = ref.step([None if g is None else np.asarray(g) for g in odd_grads])
    mismatch = None
    if applied is not ref_applied and isinstance(applied, bool):
        mismatch = f"step returned {applied}, the reference {'applied' if ref_applied else 'skipped'} it"
    mismatch = mismatch or verdict(opt, ref, np.dtype(case["dtype"]),
                                   _loose(case.get("options", {})))
    return {**_ok(_then_good_step(opt, ref, rng, case, mismatch)), "expect": expect}


def case_edit(case, rng):
    """Edits of ``param_groups`` (or ``add_param_group``), then a step."""
    opt, ref, params = _warm(case, rng)
    n_groups = len(opt.param_groups)
    added = []
    before = snapshot(opt)
    try:
        for g, op, key, value in case["edits"]:
            group = opt.param_groups[min(g, n_groups - 1)]
            if op == "set":
                group[key] = value
            elif op == "del" and key in group:  # (del of a missing key: dict's own KeyError)
                del group[key]
            elif op == "update":
                group.update({key: value})
        before = snapshot(opt)  # the edits are the user's; the step must change nothing when it fails
        add = case.get("add_group")
        if add is not None:
            kind, extra = add
            dtype = np.dtype(case["dtype"])
            if kind == "new":
                arrays = make_arrays(rng, [(4,), (2, 3)], dtype)
            elif kind == "dup":  # one of the optimizer's own parameters
                arrays = [params[0]]
            elif kind == "dup_within":
                a = make_arrays(rng, [(3,)], dtype)[0]
                arrays = [a, a]
            else:  # an odd array
                arrays = [odd(make_arrays(rng, [(4,)], dtype)[0], kind, rng)]
            group_arg = extra if not isinstance(extra, dict) else {"params": arrays, **extra}
            opt.add_param_group(group_arg)
            added = [np.asarray(a).copy() for a in arrays]
            before = snapshot(opt)  # the group added; now the step
        with np.errstate(all="ignore"):
            gs = good_grads(rng, [p.array for p in opt._params])
            opt.step(gs)
    except Exception as e:
        return _raised(e, diff(before, snapshot(opt)))
    # the reference goes on with what the groups now hold; an edited initial_accumulator_value
    # does not refill the accumulators the constructor filled (torch's Adagrad), which it cannot follow
    if any(op != "del" and key == "initial_accumulator_value" for _, op, key, _ in case["edits"]):
        ref.unmodelled.append("initial_accumulator_value edited")
    for g, group in enumerate(opt.param_groups):
        hyper = {k: v for k, v in group.items() if k != "params"}
        if g < len(ref.groups):
            ref.add_group(case["name"], hyper, ref.groups[g][2], ref.groups[g][3], at=g)
        else:
            ref.add_group(case["name"], hyper, added, [{} for _ in added])
    with np.errstate(all="ignore"):
        ref.step(gs)
        mismatch = verdict(opt, ref, np.dtype(case["dtype"]),
                           _loose(case.get("options", {})))
    return _ok(_then_good_step(opt, ref, rng, case, mismatch))


def case_clip(case, rng):
    """clip_grad_norm_, clip_grad_value_ or global_norm with odd arrays and arguments."""
    dtype = np.dtype(case["dtype"])
    arrays = make_arrays(rng, [tuple(s) for s in case["shapes"]], dtype, scale=case.get("scale", 1.0))
    args = list(arrays)
    for i, how in case["grad_odd"].items():
        args[i] = odd(arrays[i], how, rng, others=args[:i])
    arg = args[0] if case.get("single") and len(args) == 1 else args
    fn, kw = case["fn"], dict(case["kwargs"])
    kw["backend"] = case["backend"]
    plain = [np.array(a, dtype=np.float64 if not isinstance(a, np.ndarray) else a.dtype, copy=True)
             for a in args if a is not None]
    before = array_snapshot(args)
    try:
        with np.errstate(all="ignore"):
            out = getattr(fastopt, fn)(arg, **kw)
    except RuntimeError as e:
        if fn == "clip_grad_norm_" and kw.get("error_if_nonfinite") and not isinstance(e, CONTRACT_ERRORS):
            r = _raised(e, diff(before, array_snapshot(args)))
            r["contract_exc"] = True  # documented: a non-finite norm with error_if_nonfinite
            r["expected_runtime"] = True
            total = reference.clip_grad_norm_([a.copy() for a in plain], 1.0, kw.get("norm_type", 2.0))
            r["mismatch"] = None if not math.isfinite(total) else f"RuntimeError for a finite norm {total}"
            return r
        return _raised(e, diff(before, array_snapshot(args)))
    except Exception as e:
        return _raised(e, diff(before, array_snapshot(args)))
    with np.errstate(all="ignore"):
        kw.pop("backend")
        if fn == "global_norm":
            ref_out = reference.clip_grad_norm_([a.copy() for a in plain], math.inf,
                                                kw.get("norm_type", 2.0))
            after = plain
        elif fn == "clip_grad_norm_":
            after = [a.copy() for a in plain]
            ref_out = reference.clip_grad_norm_(after, kw["max_norm"], kw.get("norm_type", 2.0))
        else:
            after = [a.copy() for a in plain]
            reference.clip_grad_value_(after, kw["clip_value"])
            ref_out = None
    got = [np.asarray(a) for a in args if a is not None]
    if ref_out is not None:
        try:
            np.testing.assert_allclose(float(out), ref_out, rtol=1e-10, atol=0, equal_nan=True)
        except AssertionError:
            return _ok(f"{fn} returned {float(out)!r}, the reference's norm is {ref_out!r}")
    mismatch = compare(got, after, dtype, loose=True)
    return _ok(mismatch)


def case_flatten(case, rng):
    """flatten of odd arrays and dtypes: the views hold the values, cast to the buffer's dtype."""
    base = make_arrays(rng, [tuple(s) for s in case["shapes"]], np.dtype(case["dtype"]))
    args = [odd(a, how, rng) for a, how in zip(base, case["odd"])]
    arg = args[0] if case.get("single") else args
    before = array_snapshot(args)
    try:
        with np.errstate(all="ignore"):
            flat, views = fastopt.flatten(arg, **case["kwargs"])
    except Exception as e:
        return _raised(e, diff(before, array_snapshot(args)))
    if diff(before, array_snapshot(args)):
        return {**_ok("flatten changed its input"), "changed": diff(before, array_snapshot(args))}
    items = [arg] if isinstance(arg, np.ndarray) else list(arg)
    if len(views) != len(items):
        return _ok(f"{len(views)} views for {len(items)} arrays")
    if type(flat) is not np.ndarray or flat.ndim != 1 or not flat.flags.c_contiguous:
        return _ok(f"flat is a {type(flat).__name__} of shape {flat.shape}")
    for i, (v, a) in enumerate(zip(views, items)):
        if type(v) is not np.ndarray or (v.size and not np.shares_memory(v, flat)):
            return _ok(f"views[{i}] is not a plain view of flat")
        want = np.asarray(a)
        if isinstance(a, np.ma.MaskedArray):
            return _ok(f"arrays[{i}] is a masked array: its mask was dropped")
        if v.shape != want.shape:
            return _ok(f"views[{i}] has shape {v.shape}, arrays[{i}] {want.shape}")
        with np.errstate(all="ignore"):
            try:
                expect = want.astype(flat.dtype)
            except Exception as e:  # noqa: BLE001 - what numpy itself refuses to cast
                return _ok(f"views[{i}]: numpy cannot cast arrays[{i}] to {flat.dtype}: {e}")
        if v.tobytes() != expect.tobytes() and not (np.isnan(v).all() if v.dtype.kind == "f" else False):
            return _ok(f"views[{i}] holds other values than arrays[{i}]")
    return _ok()


def mutate_state_dict(sd, how, opt):
    """``sd`` (a deep copy) changed in way ``how``: (target, op, value); a part an earlier
    mutation removed is left as it is."""
    try:
        return _mutate(sd, how, opt)
    except (KeyError, TypeError, AttributeError, IndexError):
        return sd


def _mutate(sd, how, opt):
    target, op, value = how
    if target == "root":
        if op == "drop":
            sd.pop(value)
        elif op == "rename":
            sd[value + "_"] = sd.pop(value)
        elif op == "replace":
            return value
        return sd
    if target == "state":
        if op == "replace":
            sd["state"] = value
        elif op == "rekey":  # the ids as strings (JSON)
            sd["state"] = {str(k): v for k, v in sd["state"].items()}
        return sd
    if target == "param_groups":
        groups = sd["param_groups"]
        if op == "replace":
            sd["param_groups"] = value
        elif op == "append":
            groups.append(copy.deepcopy(groups[0]))
        elif op == "drop":
            groups.pop()
        elif op == "ids":
            ids = list(groups[0]["params"])
            groups[0]["params"] = {"short": ids[:-1], "dup": ids[:1] * len(ids), "unknown": [i + 100 for i in ids],
                                   "strs": [str(i) for i in ids], "none": None}[value]
        elif op == "set":
            groups[0][value[0]] = value[1]
        elif op == "del":
            groups[0].pop(value, None)
        return sd
    if target == "meta":
        if "fastopt" in sd:
            if op == "set":
                sd["fastopt"][value[0]] = value[1]
            elif op == "drop":
                sd.pop("fastopt")
        return sd
    # an entry of sd["state"]: target = ("entry", which)
    entries = sd["state"]
    if not entries:
        return sd
    sid = sorted(entries, key=repr)[value[0] % len(entries)]
    entry = entries[sid]
    names = sorted(k for k, v in entry.items() if isinstance(v, np.ndarray))
    key = value[1]
    if key == "<array>":
        if not names:
            return sd
        key = names[value[2] % len(names)]
    if op == "replace_entry":
        entries[sid] = value[3]
    elif op == "drop":
        entry.pop(key, None)
    elif op == "rename":
        if key in entry:
            entry[key + "_x"] = entry.pop(key)
    elif op == "set":
        entry[key] = value[3]
    elif op == "array":  # the state array turned odd
        if key in entry and isinstance(entry[key], np.ndarray):
            entry[key] = odd(entry[key], value[3], np.random.default_rng(0))
    return sd


def case_load(case, rng):
    """load_state_dict of a mutated state_dict: works (the state is what was given and the next
    step matches the reference from it) or raises, changing nothing."""
    opt, ref, params = _warm(case, rng)
    sd = opt.state_dict()
    if case.get("into") == "fresh":
        params2 = [p.copy() for p in params]
        opt = construct(case, params2)
        params = params2
    else:
        with np.errstate(all="ignore"):
            opt.step(good_grads(rng, params))
    mutated = copy.deepcopy(sd)
    for how in case["mutations"]:
        mutated = mutate_state_dict(mutated, how, opt)
    given = copy.deepcopy(mutated)
    before = snapshot(opt)
    try:
        opt.load_state_dict(mutated)
    except Exception as e:
        return _raised(e, diff(before, snapshot(opt)))
    # what was given is what is held
    if isinstance(given, dict) and isinstance(given.get("state"), dict):
        index = {sid: k for g, group in enumerate(given["param_groups"]) for sid, k in
                 zip(group["params"], [p.index for p in opt._group_params[g]])}
        for sid, entry in given["state"].items():
            i = index[sid]
            for k, v in entry.items():
                held = opt.state[i].get(k)
                if isinstance(held, np.ndarray):
                    want = np.asarray(v).astype(held.dtype).reshape(-1)
                    if held.reshape(-1).tobytes() != want.tobytes():
                        return _ok(f"load_state_dict took state[{sid!r}][{k!r}] but holds other values")
                elif k == "step" and held != int(float(np.asarray(v).reshape(())) if not isinstance(v, int) else v):
                    return _ok(f"load_state_dict took step {v!r} but holds {held!r}")
    # one step from the loaded state, against the reference seeded with it
    group_hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    r = Ref(case["name"], [(gh, [p.array for p in opt._group_params[g]]) for g, gh in enumerate(group_hyper)],
            case.get("options", {}))
    key, _ = rule_key(case["name"], group_hyper[0])
    scalar = set(reference.SCALAR_STATE_NAMES.get(key, ()))
    for s, mine, p in zip(r.states, opt.state, opt._params):
        if opt.counts_steps and mine.get("step", 0) == 0:
            continue  # reset: the reference starts it afresh
        for k, v in mine.items():
            if k in scalar:
                s[k] = float(v)
            else:
                s[k] = v.copy() if isinstance(v, np.ndarray) else v
        if not opt.counts_steps:
            if opt._steps[p.index] == 0:
                s.clear()
    if not opt.counts_steps or case["name"] in ("LARS",):
        return _ok(note="no step counter: not stepped against the reference")
    with np.errstate(all="ignore"):
        gs = good_grads(rng, params)
        try:
            opt.step(gs)
        except Exception as e:
            return _ok(f"a good step after the load raised {type(e).__name__}: {e}")
        r.step(gs)
    return _ok(verdict(opt, r, np.dtype(case["dtype"]),
                       _loose(case.get("options", {}))))


def case_crash(case, rng):
    """What a segfaulting kernel does to the process (the isolation's own test)."""
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)


CASES = {"crash": case_crash, "construct": case_construct, "step": case_step, "edit": case_edit, "clip": case_clip,
         "flatten": case_flatten, "load": case_load}


def run_case(case):
    if case.get("backend") not in (None, *fastopt.available_backends()):
        return {"outcome": "skip", "note": f"backend {case['backend']} unavailable"}
    rng = np.random.default_rng(case.get("seed", 0))
    try:
        return CASES[case["kind"]](case, rng)
    except fastopt.BackendUnavailable as e:
        return {"outcome": "skip", "note": str(e)}
    except Exception as e:  # the harness itself: report it so the parent fails with the traceback
        return {"outcome": "harness", "exc": type(e).__name__, "message": str(e),
                "traceback": traceback.format_exc()[-4000:]}


def serve(conn):
    """Answer cases from ``conn`` until None (or the pipe closes)."""
    conn.send({"ready": True, "backends": list(fastopt.available_backends())})
    while True:
        try:
            case = conn.recv()
        except EOFError:
            return
        if case is None:
            return
        conn.send(run_case(case))
