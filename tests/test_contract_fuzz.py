"""The bad-input contract, fuzzed (hypothesis) over every public entry point: optimizer
constructors, ``step``, parameter-group edits and ``add_param_group``, the clipping helpers,
``flatten`` and ``load_state_dict``.

For every generated case either the call works, and its result equals ``fastopt.reference``'s
for the same input, or it raises a TypeError/ValueError (CheckpointError is one) whose message
names the offending argument, and nothing changed: params, state arrays, step counters, groups
and the arguments are bit-identical (compared as bytes, so NaN-aware). Inputs the README rejects
(ndarray subclasses, wrong dtype/shape, non-contiguous, aliasing) must raise; plain arrays of the
right kind must work.

Each case runs in a child process (tests/fuzz_worker.py, started once with 'spawn'; a fresh one
replaces it after a crash or a 60 s timeout), so a segfault is a failing example that hypothesis
shrinks, reported as "crashed (signal N)".

Budget: a fixed example count per test (7,500 cases in all), derandomized (reproducible in CI),
~45 s on two cores. ``FASTOPT_FUZZ_EXAMPLES=<k>`` multiplies every count by k for a longer run
before a release (``FASTOPT_FUZZ_EXAMPLES=20 pytest tests/test_contract_fuzz.py``: ~15 minutes).
``--hypothesis-show-statistics`` shows how the cases ended (ok, raised which error, expected).
"""
from __future__ import annotations

import inspect
import math
import multiprocessing
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastopt
from tests import fuzz_worker
from tests.conftest import CONFIGS

SCALE = max(1, int(os.environ.get("FASTOPT_FUZZ_EXAMPLES", "1")))
CALL_TIMEOUT = 60.0


def budget(n):
    return settings(max_examples=n * SCALE, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


# ---------------------------------------------------------------------------- the child process
class Worker:
    """One child process that runs cases; restarted after a crash or a timeout."""

    def __init__(self):
        self._ctx = multiprocessing.get_context("spawn")  # fork would copy Numba's/OpenMP's threads
        self._proc = None
        self._start()

    def _start(self):
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=fuzz_worker.serve, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(120):
            raise RuntimeError("the fuzz worker did not start within 120 s")
        self.backends = parent.recv()["backends"]

    def _restart(self):
        self._proc.kill()
        self._proc.join(10)
        self._conn.close()
        self._start()

    def run(self, case, timeout=CALL_TIMEOUT):
        try:
            self._conn.send(case)
            ready = self._conn.poll(timeout)
            if ready:
                return self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            ready = True
        if ready:  # the pipe closed: the child died
            self._proc.join(10)
            code = self._proc.exitcode
            self._restart()
            return {"outcome": "crash", "exitcode": code}
        self._restart()
        return {"outcome": "timeout"}

    def close(self):
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()


@pytest.fixture(scope="module")
def worker(request):
    w = Worker()
    request.addfinalizer(w.close)
    return w


def check(worker, case):
    """Run ``case`` in the child and assert the contract on what it reports."""
    if case.get("backend") not in (None, *worker.backends):  # cython not built here: its cases on numba
        case = {**case, "backend": worker.backends[0]}
    r = worker.run(case)
    outcome = r["outcome"]
    if outcome == "crash":
        code = r["exitcode"]
        pytest.fail(f"crashed (signal {-code})" if code is not None and code < 0 else f"crashed (exit {code})")
    if outcome == "timeout":
        pytest.fail(f"no answer within {CALL_TIMEOUT:.0f} s (hung)")
    assert outcome != "harness", f"the test harness failed: {r['traceback']}"
    expect = r.get("expect")
    event(f"{outcome}" + (f" ({r['exc'].rsplit('.', 1)[-1]})" if outcome == "raised" else "")
          + (f", expected {expect}" if expect else ""))  # --hypothesis-show-statistics
    if outcome == "skip":
        return r
    if outcome == "raised":
        assert r["contract_exc"], f"raised {r['exc']} (not TypeError/ValueError): {r['message']}\n{r['traceback']}"
        assert not r["changed"], f"raised {r['exc']}({r['message']!r}) after changing {r['changed']}"
        assert r["mismatch"] is None, r["mismatch"]
        assert expect != "accept", f"rejected valid input: {r['exc']}: {r['message']}"
        if not r.get("expected_runtime"):
            names = case["names"]
            assert any(n.lower() in r["message"].lower() for n in names), \
                f"the message names none of {names}: {r['exc']}: {r['message']!r}"
    else:
        assert not r["changed"], f"changed {r['changed']}"
        assert expect != "reject", "accepted input the README says is rejected"
        assert r["mismatch"] is None, r["mismatch"]
    return r


# ---------------------------------------------------------------------------- strategies
BACKENDS = st.sampled_from(["numba", "cython", "python"])
DTYPES = st.sampled_from(["f4", "f8"])
SHAPE = st.sampled_from([(0,), (1,), (5,), (3, 4), (2, 1, 3), (7,)])
SHAPES = st.lists(SHAPE, min_size=1, max_size=3)
SEEDS = st.integers(0, 2**32 - 1)
CFGS = st.sampled_from(CONFIGS)

#: values no real hyperparameter takes (10**400 is beyond the doubles) (the contract: TypeError/ValueError naming the key)
ALWAYS_BAD = [math.nan, "0.1", 10**400, -10**400, np.float64(math.nan), np.array([0.1, 0.2]), [0.1], b"1",
              complex(0.1, 0)]
#: odd values some keys take and others refuse
ODD = [-1.0, -1, math.inf, -math.inf, True, False, None, np.array(0.1), 1e308, np.int64(-1), np.float32(math.inf),
       0, 0.0, 2, 1.5, np.float32(0.5), np.float64(0.3), np.int64(3)]


def signature_defaults(name):
    params = inspect.signature(getattr(fastopt, name)).parameters
    return {k: p.default for k, p in params.items()
            if k not in ("params", "kwargs", "convention") and p.default is not inspect.Parameter.empty}


def valid_like(default):
    """A strategy of values of the kind of ``default``, near it."""
    if isinstance(default, bool):
        return st.sampled_from([True, False, np.True_, np.False_])
    if isinstance(default, int):
        return st.sampled_from([0, 1, 3, np.int64(2), default])
    if isinstance(default, float):
        if default == 0.0:
            return st.sampled_from([0.0, 0.01, 0.1, np.float64(0.05), 0])
        return st.sampled_from([0.5, 0.9, 1.0, 1.1]).map(lambda f: default * f) | st.just(np.float64(default))
    if isinstance(default, tuple):
        return st.tuples(*[valid_like(d) if d is not None else st.sampled_from([None, 1e-30]) for d in default]) \
            | st.just(list(default))
    return st.just(default)


def bad_like(default):
    if isinstance(default, tuple):
        n = len(default)
        return st.sampled_from([0.9, (0.9,) * (n - 1), (0.9,) * (n + 1), ("a",) * n, (math.nan,) * n,
                                (10**100,) * n, (-1.0,) * n, None, "ab", (math.inf,) * n, (True,) * n])
    if isinstance(default, bool):
        return st.sampled_from([1, 0, "True", None, np.array(True), 2.5])
    return st.sampled_from(ALWAYS_BAD + ODD)


def hyper_value(default):
    return st.one_of(valid_like(default), bad_like(default))


@st.composite
def overrides(draw, name, n_max=2):
    """Up to ``n_max`` hyperparameters of class ``name``, each valid or not."""
    defaults = signature_defaults(name)
    keys = draw(st.lists(st.sampled_from(sorted(defaults)), max_size=n_max, unique=True))
    return {k: draw(hyper_value(defaults[k])) for k in keys}


OPTION_VALUES = {
    "clipnorm": st.sampled_from([0.5, 2.0, 10**400, -1.0, 0.0, math.nan, "1", True]),
    "clipvalue": st.sampled_from([0.1, 1.0, math.inf, -0.5, math.nan, None]),
    "global_clipnorm": st.sampled_from([0.3, 5.0, np.float32(1.0), 0.0, -2.0, math.inf, [1.0]]),
    "skip_nonfinite": st.sampled_from([True, False, 1, "yes"]),
    "use_ema": st.sampled_from([True, False, None]),
    "ema_momentum": st.sampled_from([0.9, 0.0, 1.5, math.nan, "x"]),
    "flush_denormals": st.sampled_from([True, False, 0]),
    "gradient_accumulation_steps": st.sampled_from([2, 3, 1, 0, -1, 1.5, True, 10**400]),
    "ema_overwrite_frequency": st.sampled_from([None, 2, 0, -1, 1.5]),
    "learning_rate": st.just(0.1),  # not a keyword of any class here
}


@st.composite
def options(draw, safe=False):
    """Training-loop keywords; ``safe``: only valid ones the reference models (clipping, skip_nonfinite,
    use_ema, flush_denormals)."""
    if safe:
        clip = draw(st.sampled_from([None, "clipnorm", "clipvalue", "global_clipnorm"]))
        out = {}
        if clip:
            out[clip] = draw(st.sampled_from({"clipnorm": [0.5, 3.0], "clipvalue": [0.1, 1.0],
                                              "global_clipnorm": [0.3, 5.0]}[clip]))
        for k in ("skip_nonfinite", "use_ema", "flush_denormals"):
            if draw(st.booleans()):
                out[k] = True
        return out
    keys = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=2, unique=True))
    return {k: draw(OPTION_VALUES[k]) for k in keys}


def param_name(i, n, grouped):
    """How messages name parameter ``i`` of ``n`` (groups split as fuzz_worker.group_split)."""
    if not grouped:
        return f"params[{i}]"
    k = max(1, n // 2)
    g, j = (0, i) if i < k else (1, i - k)
    return f"param_groups[{g}]['params'][{j}]"


PARAM_ODD = ["readonly", "memmap", "matrix", "masked", "subclass", "arraylike", "object", "bigendian", "int64",
             "float16", "complex128", "strided", "fortran", "reversed", "list", "pyfloat", "zerodim",
             "same_as_other", "nan", "copy"]


@st.composite
def construct_cases(draw):
    name, base = draw(CFGS)
    shapes = draw(SHAPES)
    grouped = len(shapes) > 1 and draw(st.booleans())
    over = draw(overrides(name))
    group_hyper = [{}, draw(overrides(name, 1))] if grouped else None
    opts = draw(options())
    param_odd = {}
    if draw(st.booleans()):
        param_odd[draw(st.integers(0, len(shapes) - 1))] = draw(st.sampled_from(PARAM_ODD))
    names = ["overlap"] + [f"{k}" for k in over] + [k for k in opts] + [
        k for gh in (group_hyper or []) for k in gh]
    names += [param_name(i, len(shapes), grouped) for i in param_odd]
    if "betas" in names:
        names.append("beta parameter")
    return dict(kind="construct", name=name, hyper={**base, **over}, options=opts, shapes=shapes,
                dtype=draw(DTYPES), backend=draw(BACKENDS), seed=draw(SEEDS), group_hyper=group_hyper,
                param_odd=param_odd, names=names)


GRAD_ODD = ["readonly", "memmap", "matrix", "masked", "subclass", "arraylike", "object", "bigendian", "int64",
            "int32", "bool", "complex128", "float16", "otherfloat", "strided", "fortran", "reversed", "list",
            "pyfloat", "zerodim", "none", "nan", "inf", "-inf", "huge", "wrong_shape", "wrong_length",
            "same_as_other", "param", "state", "copy"]
WHOLE = [None, None, None, "short", "long", "tuple", "generator", "dict", "single", "none", "nested"]


@st.composite
def step_cases(draw):
    name, base = draw(CFGS)
    shapes = draw(SHAPES)
    grouped = len(shapes) > 1 and draw(st.booleans())
    odd = draw(st.dictionaries(st.integers(0, len(shapes) - 1), st.sampled_from(GRAD_ODD), max_size=2))
    whole = draw(st.sampled_from(WHOLE))
    opts = draw(options(safe=True))
    if "huge" in odd.values() and opts.get("clipnorm", opts.get("global_clipnorm")):
        # known, in the kernels: a clip factor below float32's normal range (a 1e37 gradient
        # clipped to 0.5) is applied as a float32 denormal: inexact, and 0 under flush_denormals
        opts.pop("flush_denormals", None)
    names = ["grads", "gradients", "overlaps"] if whole else ["overlaps"]
    names += [f"grads[{i}]" for i in odd]
    return dict(kind="step", name=name, hyper=base, options=opts, shapes=shapes,
                dtype=draw(DTYPES), backend=draw(BACKENDS), seed=draw(SEEDS), warm=draw(st.integers(0, 2)),
                group_hyper=[{}, {"lr": 0.002}] if grouped else None, grad_odd=odd, whole=whole, names=names)


@st.composite
def edit_cases(draw):
    name, base = draw(CFGS)
    shapes = draw(SHAPES)
    grouped = len(shapes) > 1 and draw(st.booleans())
    defaults = signature_defaults(name)
    edits = []
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["set", "set", "update", "del", "set_unknown", "set_params"]))
        key = draw(st.sampled_from(sorted(defaults)))
        if op == "set_unknown":
            edits.append((draw(st.integers(0, 1)), "set", "learning_rate", 0.1))
        elif op == "set_params":
            edits.append((0, "set", "params", draw(st.sampled_from([[], None, "x"]))))
        else:
            edits.append((draw(st.integers(0, 1)), op, key, draw(hyper_value(defaults[key]))))
    add = None
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["new", "new", "dup", "dup_within", "matrix", "readonly", "int64",
                                     "strided", "list"]))
        extra = draw(st.one_of(st.just({}), overrides(name, 1), st.sampled_from(
            [{"learning_rate": 0.1}, [np.ones(3)], None, "group"])))
        add = (kind, extra)
    names = ["params", "param_group", "overlap", "learning_rate"] + [e[2] for e in edits]
    if add and isinstance(add[1], dict):
        names += list(add[1])
    if any(e[2] == "betas" for e in edits) or (add and isinstance(add[1], dict) and "betas" in add[1]):
        names.append("beta parameter")
    return dict(kind="edit", name=name, hyper=base, options={}, shapes=shapes, dtype=draw(DTYPES),
                backend=draw(BACKENDS), seed=draw(SEEDS), warm=draw(st.integers(0, 2)),
                group_hyper=[{}, {"lr": 0.002}] if grouped else None, edits=edits, add_group=add, names=names)


CLIP_ODD = ["readonly", "memmap", "matrix", "masked", "subclass", "object", "bigendian", "int64", "float16",
            "complex128", "strided", "fortran", "list", "none", "nan", "inf", "huge", "zerodim", "same_as_other",
            "otherfloat", "copy"]


@st.composite
def clip_cases(draw):
    fn = draw(st.sampled_from(["clip_grad_norm_", "clip_grad_value_", "global_norm"]))
    shapes = draw(st.lists(SHAPE, min_size=0, max_size=3))
    odd = draw(st.dictionaries(st.integers(0, max(len(shapes) - 1, 0)), st.sampled_from(CLIP_ODD),
                               max_size=1)) if shapes else {}
    norm_type = draw(st.sampled_from([2.0, 1.0, 3, math.inf, "inf", 0.5, 0, -1.0, math.nan, "two", None, True]))
    kwargs = {}
    if fn == "clip_grad_norm_":
        kwargs = dict(max_norm=draw(st.sampled_from([1.0, 0.1, 0, 100, np.float32(2.0), -1.0, math.nan,
                                                     math.inf, "1", None, 10**100])),
                      norm_type=norm_type, error_if_nonfinite=draw(st.booleans()))
    elif fn == "clip_grad_value_":
        kwargs = dict(clip_value=draw(st.sampled_from([0.5, 0.0, 1, math.inf, -1.0, math.nan, None, "1",
                                                       10**100])))
    elif draw(st.booleans()):
        kwargs = dict(norm_type=norm_type)
    names = ["grads", *kwargs] + [f"grads[{i}]" for i in odd]
    return dict(kind="clip", fn=fn, shapes=shapes, dtype=draw(DTYPES), backend=draw(BACKENDS),
                seed=draw(SEEDS), grad_odd=odd, kwargs=kwargs, scale=draw(st.sampled_from([1.0, 1e-3, 1e3])),
                single=draw(st.booleans()), names=names)


FLAT_ODD = ["ok", "ok", "memmap", "matrix", "masked", "subclass", "arraylike", "object", "bigendian", "int64",
            "bool", "complex128", "float16", "otherfloat", "strided", "fortran", "list", "pyfloat", "zerodim",
            "nan", "readonly"]


@st.composite
def flatten_cases(draw):
    shapes = draw(st.lists(SHAPE, min_size=0, max_size=3))
    odd = [draw(st.sampled_from(FLAT_ODD)) for _ in shapes]
    kwargs = {}
    if draw(st.booleans()):
        kwargs["dtype"] = draw(st.sampled_from([np.float32, "float64", "f4", np.int64, ">f8", object, "U3",
                                                "nope", 3, complex, np.float16, None]))
    names = ["arrays", "dtype"] + [f"arrays[{i}]" for i in range(len(shapes))]
    return dict(kind="flatten", shapes=shapes, dtype=draw(DTYPES), odd=odd, kwargs=kwargs,
                single=len(shapes) == 1 and draw(st.booleans()), seed=draw(SEEDS), names=names)


#: (target, op, value) mutations of a state_dict, with the names the error must mention
SD_MUTATIONS = [
    (("root", "drop", "state"), ["state"]), (("root", "drop", "param_groups"), ["param_groups"]),
    (("root", "rename", "state"), ["state"]), (("root", "replace", None), ["state_dict"]),
    (("root", "replace", []), ["state_dict"]), (("root", "replace", "sd"), ["state_dict"]),
    (("state", "replace", 1.5), ["state"]), (("state", "replace", []), ["state"]),
    (("state", "replace", None), ["state"]), (("state", "rekey", None), ["state"]),
    (("state", "replace", {}), []),
    (("param_groups", "replace", {}), ["param_groups"]), (("param_groups", "replace", [1]), ["param_groups"]),
    (("param_groups", "append", None), ["group"]), (("param_groups", "drop", None), ["group"]),
    (("param_groups", "ids", "short"), ["params", "group"]), (("param_groups", "ids", "dup"), ["params"]),
    (("param_groups", "ids", "unknown"), ["params", "state"]), (("param_groups", "ids", "strs"), ["params", "state"]),
    (("param_groups", "ids", "none"), ["params"]),
    (("param_groups", "set", ("lr", -1.0)), ["lr"]), (("param_groups", "set", ("lr", "x")), ["lr"]),
    (("param_groups", "set", ("bogus", 1)), ["bogus"]), (("param_groups", "del", "params"), ["params"]),
    (("param_groups", "del", "lr"), ["lr"]), (("param_groups", "set", ("lr", 0.01)), []),
    (("param_groups", "set", ("maximize", "no")), ["maximize"]),
    (("meta", "set", ("optimizer", "Nope")), ["Nope"]), (("meta", "set", ("calls", -1)), ["calls"]),
    (("meta", "set", ("calls", 1.5)), ["calls"]), (("meta", "set", ("skipped_steps", "2")), ["skipped_steps"]),
    (("meta", "set", ("steps", [1])), ["steps"]), (("meta", "drop", None), []),
    (("meta", "set", ("calls", 10**100)), ["calls"]),
]
ENTRY_MUTATIONS = [
    ("replace_entry", None, 1.5, ["state"]), ("replace_entry", None, [], ["state"]),
    ("replace_entry", None, {}, ["state", "lacks"]),
    ("drop", "<array>", None, ["state"]), ("rename", "<array>", None, ["state"]), ("drop", "step", None, []),
    ("set", "step", math.inf, ["step"]), ("set", "step", -1, ["step"]), ("set", "step", 1.5, ["step"]),
    ("set", "step", "3", ["step"]), ("set", "step", None, ["step"]), ("set", "step", 3.0, ["step"]),
    ("set", "step", np.int64(3), ["step"]), ("set", "step", True, ["step"]), ("set", "step", 10**100, ["step"]),
    ("set", "step", np.array([2, 3]), ["step"]), ("set", "step", np.float64(math.nan), ["step"]),
    ("set", "step", 2**62, ["step"]),
    ("set", "bogus", np.zeros(3), ["bogus"]),
] + [("array", "<array>", how, ["state"]) for how in
     ["wrong_shape", "wrong_length", "otherfloat", "int64", "complex128", "object", "bool", "list", "zerodim",
      "nan", "matrix", "masked", "bigendian", "strided", "readonly", "float16", "pyfloat", "none", "subclass"]]


@st.composite
def load_cases(draw):
    name, base = draw(CFGS)
    shapes = draw(SHAPES)
    muts, names = [], ["state_dict"]
    for _ in range(draw(st.integers(1, 2))):
        if draw(st.booleans()):
            how, ns = draw(st.sampled_from(SD_MUTATIONS))
        else:
            op, key, value, ns = draw(st.sampled_from(ENTRY_MUTATIONS))
            how = (("entry",), op, (draw(st.integers(0, 5)), key, draw(st.integers(0, 5)), value))
        muts.append(how)
        names += ns
    return dict(kind="load", name=name, hyper=base, options={}, shapes=shapes, dtype=draw(DTYPES),
                backend=draw(BACKENDS), seed=draw(SEEDS), warm=draw(st.integers(1, 3)),
                into=draw(st.sampled_from(["same", "fresh"])), mutations=muts, names=names)


# ---------------------------------------------------------------------------- the tests
@budget(1000)
@given(case=construct_cases())
def test_constructors(worker, case):
    check(worker, case)


@budget(2400)
@given(case=step_cases())
def test_step_with_odd_gradients(worker, case):
    check(worker, case)


@budget(1000)
@given(case=edit_cases())
def test_param_group_edits(worker, case):
    check(worker, case)


@budget(1000)
@given(case=clip_cases())
def test_clipping_helpers(worker, case):
    check(worker, case)


@budget(500)
@given(case=flatten_cases())
def test_flatten(worker, case):
    check(worker, case)


@budget(1600)
@given(case=load_cases())
def test_load_state_dict(worker, case):
    check(worker, case)


def test_a_crash_is_a_failing_example_and_the_worker_recovers(worker):
    """The isolation itself: a child killed by a signal is reported, and the next case runs."""
    r = worker.run({"kind": "crash"})
    assert r == {"outcome": "crash", "exitcode": -11}
    r = worker.run(dict(kind="flatten", shapes=[(3,)], dtype="f8", odd=["ok"], kwargs={}, seed=0, names=[]))
    assert r["outcome"] == "ok" and r["mismatch"] is None
