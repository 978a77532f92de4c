"""``flush_denormals``: FTZ/DAZ inside the kernels, in every thread that runs a chunk, and only there."""
from __future__ import annotations

import platform

import numpy as np
import pytest

import fastopt
from fastopt import _backends
from tests.conftest import REPRESENTATIVE, config_id, kernel_threads, require_backend

COMPILED = ["numba", "cython"]
x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="flushing denormals sets the x86-64 MXCSR")
TINY = np.float32(1e-40)  # a float32 denormal


@pytest.fixture
def two_threads():
    with kernel_threads(2):
        yield


@x86
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("size", [1000, 2 * _backends.PARALLEL_THRESHOLD + 37], ids=["serial", "parallel"])
def test_denormal_results_become_zero_in_every_chunk(backend, size, two_threads):
    require_backend(backend)
    bufs = {}
    for ftz in (False, True):
        p = np.ones(size, np.float32)
        opt = fastopt.SGD(p, lr=1.0, momentum=0.5, flush_denormals=ftz, backend=backend)
        opt.step(np.full(size, TINY))
        bufs[ftz] = opt.state[0]["momentum_buffer"].copy()
    # unflushed, torch's numbers: the buffer holds the denormal gradient
    assert np.all(bufs[False] == TINY) and np.all(bufs[False] != 0)
    # flushed: DAZ reads the gradient as 0 in the first chunk and the last (the second thread's)
    assert np.all(bufs[True] == 0)


@x86
@pytest.mark.parametrize("backend", COMPILED)
def test_the_calling_threads_mode_is_restored(backend, two_threads):
    require_backend(backend)
    size = 2 * _backends.PARALLEL_THRESHOLD
    opt = fastopt.Adam(np.ones(size, np.float32), flush_denormals=True, backend=backend)
    opt.step(np.full(size, TINY))
    # NumPy in this thread still produces denormals: the kernel put MXCSR back as it was
    assert np.float32(1e-38) / np.float32(1e3) != 0
    assert np.multiply(np.full(4, 1e-20, np.float32), np.float32(1e-20)).min() > 0


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("cfg", REPRESENTATIVE, ids=config_id)
def test_normal_numbers_are_unchanged_bit_for_bit(cfg, backend):
    """Without denormals in play, flushing changes nothing: every rule, every pass."""
    require_backend(backend)
    name, hyper = cfg
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(3000).astype(np.float32)
    grads = [rng.standard_normal(3000).astype(np.float32) for _ in range(5)]
    out = []
    for ftz in (False, True):
        p = p0.copy()
        opt = getattr(fastopt, name)(p, **hyper, flush_denormals=ftz, backend=backend)
        for g in grads:
            opt.step(g)
        out.append(p)
    np.testing.assert_array_equal(out[0], out[1])


def test_the_flag_is_checked_and_can_be_changed():
    with pytest.raises(TypeError, match="flush_denormals must be a bool"):
        fastopt.Adam(np.ones(4, np.float32), flush_denormals="yes")
    opt = fastopt.SGD(np.ones(4, np.float32), lr=0.1)
    assert opt.flush_denormals is False
    opt.step(np.ones(4, np.float32))
    opt.flush_denormals = True
    assert opt.flush_denormals is True
    opt.step(np.ones(4, np.float32))
    np.testing.assert_allclose(opt.param_groups[0]["params"][0], 0.8)


PER_ARRAY = [("Lamb", {}, 1), ("LARS", {"momentum": 0.9}, 1), ("Adafactor", {}, 1), ("Adafactor", {}, 64)]


@x86
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("size", [1024, 2 * _backends.PARALLEL_THRESHOLD + 1024], ids=["serial", "parallel"])
@pytest.mark.parametrize("name, hyper, cols", PER_ARRAY, ids=["Lamb", "LARS", "Adafactor-vector", "Adafactor-matrix"])
def test_multi_pass_rules_flush_in_every_pass_and_chunk(name, hyper, cols, backend, size, two_threads):
    """DAZ in every pass and every thread of a multi-pass rule: a flushed step on a gradient that
    is half denormal is the unflushed step on that gradient with those entries 0."""
    require_backend(backend)
    rng = np.random.default_rng(5)
    shape = (size,) if cols == 1 else (size // cols, cols)
    p0 = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    tiny = rng.random(shape) < 0.5
    denormal, zeroed = np.where(tiny, TINY, g), np.where(tiny, np.float32(0), g)

    def run(grad, ftz):
        p = p0.copy()
        opt = getattr(fastopt, name)(p, **hyper, flush_denormals=ftz, backend=backend)
        for _ in range(3):
            opt.step(grad)
        return p, {k: v.copy() for k, v in opt.state[0].items() if isinstance(v, np.ndarray) and v.size > 1}

    p_ref, s_ref = run(zeroed, False)
    p_ftz, s_ftz = run(denormal, True)
    np.testing.assert_array_equal(p_ftz, p_ref)
    for key in s_ref:
        np.testing.assert_array_equal(s_ftz[key], s_ref[key], err_msg=key)
    if name == "Lamb":  # unflushed, the denormals reach the first moment: the flag made the difference
        _, s_raw = run(denormal, False)
        assert np.any(s_raw["exp_avg"] != s_ref["exp_avg"])
