"""One optimizer step on one flat buffer: fastopt backends vs the NumPy reference vs torch.optim.

Run all:           python -m pytest benchmarks --benchmark-only
In-cache sizes:    python -m pytest benchmarks --benchmark-only -k "1000 or 65536"
Smoke test:        python -m pytest benchmarks -q --benchmark-disable   (each case steps 3 times)

Cases of one optimizer, dtype and size share a benchmark group, so pytest-benchmark's table
compares them directly; ``extra_info`` holds ``gbps``, ``bytes_per_element`` and ``elements``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastopt
from fastopt._bench.impls import DEFAULT_SIZES as SIZES
from fastopt._bench.impls import OPTIMIZERS, Unsupported, bytes_per_element, make_stepper

DTYPES = ("float32", "float64")
NAMES = tuple(OPTIMIZERS)
#: the per-step overhead target for a 1000-element float32 Adam step (DESIGN.md section 5)
SMALL_STEP_TARGET_US = 3.0


def available(backend):
    return backend in fastopt.available_backends()


def size_id(n):
    return f"n{n}"


def _bpe(name, dtype):
    return bytes_per_element(name, OPTIMIZERS[name], np.dtype(dtype).itemsize)


def _group(name, dtype, n):
    return f"{name} {dtype} n={n}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("backend", ("numba", "cython"))
@pytest.mark.parametrize("name", NAMES)
def test_bench_fastopt(run_step, name, backend, size, dtype):
    if not available(backend):
        pytest.skip(f"fastopt backend {backend!r} is not available")
    step = make_stepper("fastopt", name, size, dtype, backend=backend)
    run_step(step, size, _bpe(name, dtype), group=_group(name, dtype, size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("name", NAMES)
def test_bench_numpy_reference(run_step, name, size, dtype):
    step = make_stepper("numpy", name, size, dtype)
    run_step(step, size, _bpe(name, dtype), group=_group(name, dtype, size))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("variant", ("fused", "forloop"))
@pytest.mark.parametrize("name", NAMES)
def test_bench_torch(run_step, torch, name, variant, size, dtype):
    try:
        step = make_stepper(f"torch-{variant}", name, size, dtype)
    except Unsupported as exc:
        pytest.skip(str(exc))
    run_step(step, size, _bpe(name, dtype), group=_group(name, dtype, size))


@pytest.mark.parametrize("backend", ("numba", "cython"))
def test_bench_small_step_overhead(benchmark, run_step, backend):
    """``opt.step(g)`` for a 1000-element float32 Adam: the Python-side cost per step (target <= 3 us)."""
    if not available(backend):
        pytest.skip(f"fastopt backend {backend!r} is not available")
    step = make_stepper("fastopt", "Adam", 1000, "float32", backend=backend)
    run_step(step, 1000, _bpe("Adam", "float32"), group="small step overhead (Adam float32 n=1000)")
    benchmark.extra_info["target_us"] = SMALL_STEP_TARGET_US
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.median * 1e6 > SMALL_STEP_TARGET_US:
        warnings.warn(f"{backend}: a 1000-element Adam step took {stats.stats.median * 1e6:.2f} us "
                      f"(median), above the {SMALL_STEP_TARGET_US} us target", stacklevel=1)


@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("impl", ("fastopt", "torch-fused"))
def test_bench_clip_pipeline(run_step, request, impl, size):
    """Global-norm clipping + Adam (float32): fastopt's ``global_clipnorm=1.0`` (one norm pass, clipping
    fused into the update) vs ``torch.nn.utils.clip_grad_norm_`` followed by torch's fused Adam.

    GB/s counts the minimal traffic of the pipeline for both: one read of g for the norm plus the
    fused Adam step (32 B per float32 element).
    """
    if impl.startswith("torch"):
        request.getfixturevalue("torch")
    try:
        step = make_stepper(impl, "Adam", size, "float32", global_clipnorm=1.0)
    except Unsupported as exc:
        pytest.skip(str(exc))
    run_step(step, size, _bpe("Adam", "float32") + 4, group=f"clip pipeline (global norm 1.0 + Adam float32 n={size})")


@pytest.mark.parametrize("size", (65536, 1_048_576, 4_194_304), ids=size_id)
@pytest.mark.parametrize("flush", (False, True), ids=("unflushed", "flush_denormals"))
@pytest.mark.parametrize("grads", ("normal", "denormal"))
@pytest.mark.parametrize("backend", ("numba", "cython"))
def test_bench_denormal_grads(run_step, backend, grads, flush, size):
    """Adam float32 on gradients that are (over 99%) float32 denormals, ~1e-39, against normal ones,
    with and without ``flush_denormals``; one group per size, so the table gives the ratios."""
    if not available(backend):
        pytest.skip(f"fastopt backend {backend!r} is not available")
    step = make_stepper("fastopt", "Adam", size, "float32", backend=backend, grads=grads, flush_denormals=flush)
    run_step(step, size, _bpe("Adam", "float32"), group=f"denormal grads (Adam float32 {backend} n={size})")
