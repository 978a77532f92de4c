"""The optimizer step of a real model's parameters in PyTorch: fastopt.torch (flat and per tensor)
against torch.optim (fused, foreach, for-loop) and DeepSpeed's CPU Adam when installed.

Run:  python -m pytest benchmarks/test_bench_torch.py --benchmark-only
(``gpt2`` allocates ~2 GB per implementation; the smoke run with --benchmark-disable skips it.)
"""
from __future__ import annotations

import gc

import numpy as np
import pytest

from fastopt._bench.impls import Unsupported, bytes_per_element
from fastopt._bench.torch_step import IMPLS, MODELS, make_torch_stepper

pytest.importorskip("torch")


@pytest.mark.parametrize("clip", [None, 1.0], ids=["step", "clip+step"])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model", tuple(MODELS))
def test_bench_model_step(benchmark, request, model, impl, clip):
    if model != "small-arrays" and request.config.getoption("benchmark_disable"):
        pytest.skip(f"{model} is skipped in the smoke run (large)")
    shapes = MODELS[model]()
    try:
        step = make_torch_stepper(impl, "Adam", shapes, {"lr": 1e-3}, global_clipnorm=clip)
    except Unsupported as exc:
        pytest.skip(str(exc))
    n = sum(int(np.prod(s)) for s in shapes)
    what = "Adam step" if clip is None else f"global-norm clip ({clip}) + Adam step"
    benchmark.group = f"{what}, {model} ({len(shapes)} arrays, {n:,} parameters)"
    step()
    step()
    if model != "small-arrays":
        benchmark.pedantic(step, rounds=5, iterations=1)
    else:
        benchmark(step)
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info.update(elements=n, arrays=len(shapes), bytes_per_element=28)
    if stats is not None:
        benchmark.extra_info["gbps"] = bytes_per_element("Adam", {}, 4) * n / stats.stats.median / 1e9
    del step
    gc.collect()
