"""Storage variants of the elementwise kernels (``_kernels/_storage_template``), bit for bit.

A variant reads its stored operands (bfloat16/float16 bits, float32), runs the rule's float32 math
and rounds what it stores. Its specification, checked here for every elementwise rule: the same
steps as loading every operand to float32 exactly (``fastopt.reference.storage``), running the
float32 kernel (itself pinned bit for bit to the NumPy references in float32) and rounding the
parameter (nearest even or stochastic, with the (seed, step, element) bits) and the 16-bit states
(nearest even); with ``master`` the float32 master is what the float32 kernel updates.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt
from fastopt import _backends
from fastopt._kernels import _storage_template as st
from fastopt.optimizers.core.plan import _Plan
from fastopt.reference import storage as rs
from tests.conftest import require_backend

ml_dtypes = pytest.importorskip("ml_dtypes")

#: one optimizer per elementwise kernel module (the rule's default hyperparameters, some options on)
RULES = {
    "sgd": ("SGD", {"momentum": 0.9, "nesterov": True}), "adam": ("AdamW", {}), "rmsprop": ("RMSprop", {"centered": True}),
    "adagrad": ("Adagrad", {}), "adadelta": ("Adadelta", {}), "adamax": ("Adamax", {}), "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}), "rprop": ("Rprop", {}), "asgd": ("ASGD", {}), "ftrl": ("Ftrl", {}), "lion": ("Lion", {}),
    "moments": ("Yogi", {}), "adan": ("Adan", {}),
}  # schedule_free's optimizer adds its averaging weights per run (its own _run_call): not a plain call

S = st.Storage
STORAGES = [S("bf16", "bf16", "f32"), S("bf16", "f32", "f32"), S("bf16", "bf16", "bf16"),
            S("bf16", "bf16", "f32", master=True), S("bf16", "bf16", "f32", rounding="stochastic"),
            S("f16", "f16", "f32"), S("f16", "f16", "f32", rounding="stochastic"), S("f32", "bf16", "f32"),
            S("f32", "f32", "bf16")]

_TO = {"bf16": rs.to_bf16_nearest, "f16": rs.to_f16_nearest}
_FROM = {"bf16": rs.from_bf16, "f16": rs.from_f16}
_SR = {"bf16": rs.to_bf16_stochastic, "f16": rs.to_f16_stochastic}


def _bits(x):
    return np.asarray(x).view(np.uint16)


def _store(x, kind):
    """``x`` (float32) as storage ``kind`` stores it: 16-bit bits (nearest even) or float32."""
    return _bits(_TO[kind](x)) if kind in _TO else np.array(x, np.float32)


def _load(x, kind):
    return np.asarray(_FROM[kind](x.view(getattr(ml_dtypes, "bfloat16") if kind == "bf16" else np.float16)),
                      np.float32) if kind in _FROM else x.copy()


def _case(rule, n, seed=0):
    """An optimizer of ``rule`` on float32 arrays, its call, and gradients for three steps."""
    name, kw = RULES[rule]
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    opt = getattr(fastopt, name)([p], **kw)
    assert opt.kernel == rule, f"{name} runs {opt.kernel}"
    return opt, p, grads


#: every rule in the modes that matter most; every mode on the rules with the most state kinds
#: (each case is a Numba compilation: the matrix is kept to what can fail differently)
CASES = ([(rule, storage) for rule in sorted(RULES) for storage in STORAGES[2:5]]
         + [(rule, storage) for rule in ("adam", "sgd", "rmsprop") for storage in STORAGES[:2] + STORAGES[5:]])


@pytest.mark.parametrize("rule, storage", CASES, ids=[f"{r}-{st.tag(s)}" for r, s in CASES])
@pytest.mark.parametrize("backend, sizes, nchunks", [("numba", (0, 1, 1001), 1), ("numba", (70001,), 2),
                                                    ("python", (17,), 1)])
def test_variant_equals_float32_math_then_rounding(backend, sizes, nchunks, rule, storage):
    require_backend(backend)
    if nchunks > 1 and rule not in ("adam", "sgd"):
        pytest.skip("the parallel build is the same text in prange chunks: checked on two rules")
    for n in sizes:
        _check(backend, n, nchunks, rule, storage)


def _check(backend, n, nchunks, rule, storage):
    be = _backends.backend(backend)
    opt, p, grads = _case(rule, n)
    hyper = opt._refresh_hyper()[0]
    call = _Plan(opt, [grads[0]], be, [grads[0]]).calls[0]
    used = [len(s) > 0 or n == 0 for s in call.states]  # the states this configuration uses
    # the stored operands, and the float32 copies the reference steps (loaded exactly from them)
    p_st = _store(p, storage.param)
    master = p.copy() if storage.master else None
    states_st = [_store(np.full(len(s), opt._state_init(name, opt.param_groups[0]), np.float32), storage.state)
                 if u else np.empty(0, np.uint16 if storage.state in _TO else np.float32)
                 for s, u, name in zip(call.states, used, opt.state_names)]
    variant = be.kernel(f"{rule}__{st.tag(storage)}", np.float32, nchunks > 1)
    fp32 = be.kernel(rule, np.float32, nchunks > 1)
    seed = 1234
    for step, g in enumerate(grads, 1):
        g_st = _store(g, storage.grad)
        scalars = opt._step_scalars(hyper, step, 0)
        # the reference: load, the float32 kernel, round
        p32 = master.copy() if storage.master else _load(p_st, storage.param)
        s32 = [_load(s, storage.state) if len(s) else np.empty(0, np.float32) for s in states_st]
        fp32(p32, _load(g_st, storage.grad), *s32, *scalars, *call.tail, 1.0, np.inf, nchunks)
        if storage.rounding == "stochastic":
            want_p = _bits(_SR[storage.param](p32, seed, step, 5))
        else:
            want_p = _store(p32, storage.param)
        want_s = [_store(s, storage.state) if len(s) else s for s in s32]
        # the variant, on the stored operands
        extra = ([master] if storage.master else []) + (
            [rs.step_key(seed, step), 5] if storage.rounding == "stochastic" else [])
        variant(p_st, g_st, *states_st, *extra, *scalars, *call.tail, 1.0, np.inf, nchunks)
        np.testing.assert_array_equal(p_st.view(np.uint32 if p_st.dtype == np.float32 else np.uint16),
                                      want_p.view(np.uint32 if want_p.dtype == np.float32 else np.uint16))
        for got, want in zip(states_st, want_s):
            np.testing.assert_array_equal(got.view(np.uint16 if got.dtype == np.uint16 else np.uint32),
                                          want.view(np.uint16 if want.dtype == np.uint16 else np.uint32))
        if storage.master:
            np.testing.assert_array_equal(master.view(np.uint32), p32.view(np.uint32))


def test_variant_names_round_trip_and_bad_storages_are_refused():
    for storage in STORAGES:
        assert st.parse(f"adam__{st.tag(storage)}") == ("adam", storage)
    assert st.parse("adam") == ("adam", None)
    for bad, match in [(S("f32", "f32", "f32", master=True), "bfloat16/float16"),
                       (S("bf16", "bf16", "f32", True, "stochastic"), "without a master"),
                       (S("f64", "bf16", "f32"), "all-float64"), (S("f8", "f32", "f32"), "param storage")]:
        with pytest.raises(ValueError, match=match):
            bad.check()


def test_a_store_over_several_lines_is_refused():
    with pytest.raises(ValueError, match="one line"):
        st._rewritten("        p[i] = (pi +\n            1)", {"p": "bf16"}, S("bf16", "bf16", "f32"))


def test_cython_build_has_no_variants_yet():
    require_backend("cython")
    with pytest.raises(_backends.BackendUnavailable, match="not in the Cython build"):
        _backends.backend("cython").kernel("adam__pbf16_gbf16_sf32", np.float32, False)
