"""Fixtures for the pytest-benchmark suites (run: ``python -m pytest benchmarks --benchmark-only``).

Every case builds its buffers with ``fastopt._bench.impls.make_stepper`` (the same setup as
``python -m fastopt bench``), takes 2 warm-up steps outside the timer (Numba JIT, first-touch page
faults, lazily created torch state), then times single steps.
"""
from __future__ import annotations

import gc
import os
import time

import pytest

import fastopt

#: with --benchmark-disable (the smoke run) cases above this size are skipped: they only re-run
#: the 1M code paths, at ~1 s each; FASTOPT_BENCH_SMOKE_FULL=1 keeps them
SMOKE_MAX_SIZE = 1_048_576
#: steps at or above this size use benchmark.pedantic with a round count fitted to the step time
PEDANTIC_FROM = 1_048_576


@pytest.fixture
def torch():
    """torch with fastopt's thread count, or skip."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(fastopt.get_num_threads())
    return torch


@pytest.fixture
def run_step(benchmark):
    """``run_step(step, elements, bytes_per_element, group=None)``: warm up, time ``step()``, record GB/s."""
    def run(step, elements, bytes_per_element, group=None, budget_s=1.0):
        if group is not None:
            benchmark.group = group
        t0 = time.perf_counter()
        step()
        t1 = time.perf_counter()
        step()
        est = max(time.perf_counter() - t1, 1e-7)  # the second step: compiled and faulted in
        if elements >= PEDANTIC_FROM:
            # the NumPy and torch for-loop steps take ~0.1 s at 16M: a few rounds are plenty
            rounds = int(min(50, max(3, budget_s / est)))
            benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=0)
        else:
            benchmark(step)
        benchmark.extra_info.update(
            elements=int(elements), bytes_per_element=int(bytes_per_element),
            threads=fastopt.get_num_threads(), first_step_s=t1 - t0)
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            median = stats.stats.median
            benchmark.extra_info["gbps"] = bytes_per_element * elements / median / 1e9
    return run


@pytest.fixture(autouse=True)
def _smoke_and_collect(request):
    params = getattr(request.node, "callspec", None)
    size = params.params.get("size", 0) if params is not None else 0
    if (size > SMOKE_MAX_SIZE and request.config.getoption("benchmark_disable")
            and os.environ.get("FASTOPT_BENCH_SMOKE_FULL", "") in ("", "0")):
        pytest.skip(f"size {size} skipped with --benchmark-disable (FASTOPT_BENCH_SMOKE_FULL=1 runs it)")
    yield
    if size >= PEDANTIC_FROM:
        gc.collect()  # torch optimizers hold reference cycles: free big buffers before the next case

