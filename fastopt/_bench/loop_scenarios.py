"""The scenarios of ``python -m fastopt bench-loop``: the training loops that each variant's fresh
subprocess runs (``_worker``, started by ``fastopt._bench.loop``), timing only the optimizer step.

- ``numpy-mlp`` / ``numpy-mlp-big``: a NumPy MLP (``MODELS``) with ``fastopt.Adam``, or with
  ``numpy_adam``, Adam hand-written with in-place ufuncs;
- ``torch-mlp``: an ``nn.Sequential`` with ``fastopt.torch.Adam`` or ``torch.optim.Adam``;
- ``two-procs``: two spawned processes stepping a ``TWO_PROCS_N``-element Adam together, and one alone.

Each prints its rows (step-time percentiles, ``_stats``) as JSON on its last line; ``TIMEOUT_S``
bounds a variant's subprocess.
"""
from __future__ import annotations

import json
import os
import statistics
import time

TIMEOUT_S = 300
SCENARIOS = ("numpy-mlp", "torch-mlp", "two-procs", "numpy-mlp-big")
MODELS = {"numpy-mlp": (784, 192, 10), "numpy-mlp-big": (784, 1024, 512, 10), "torch-mlp": (784, 192, 10)}
TWO_PROCS_N = 65536
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def _configure(variant):
    import fastopt
    from fastopt import _backends
    if variant == "1-thread":
        fastopt.set_num_threads(1)
    elif variant.startswith("all-threads"):  # FASTOPT_ADAPTIVE=0 comes from the parent
        fastopt.set_num_threads(_backends._cpu_count())


def _stats(times):
    """Percentiles of step times (seconds) in microseconds."""
    us = sorted(t * 1e6 for t in times)
    dec = statistics.quantiles(us, n=10)
    q = statistics.quantiles(us, n=4)
    med = statistics.median(us)
    return {"median_us": med, "p10_us": dec[0], "p90_us": dec[-1], "iqr_us": q[2] - q[0],
            "spread": (q[2] - q[0]) / med, "n": len(us)}


def numpy_adam(p, g):
    """Adam the way a careful NumPy user writes it: in-place ufuncs and one scratch buffer."""
    import numpy as np
    m, v, tmp = np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
    t = [0]

    def step():
        nonlocal m, v, p, tmp  # the in-place operators rebind names
        t[0] += 1
        bc1, bc2 = 1 - B1 ** t[0], 1 - B2 ** t[0]
        m *= B1
        np.multiply(g, 1 - B1, out=tmp)
        m += tmp
        v *= B2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - B2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= 1 / bc2 ** 0.5
        tmp += EPS
        np.divide(m, tmp, out=tmp)
        tmp *= LR / bc1
        p -= tmp
    return step


def _data(d_in, d_out, n=2048):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    y = np.argmax(x @ rng.standard_normal((d_in, d_out)).astype(np.float32), axis=1)  # a teacher
    return x, y


def _numpy_mlp(scenario, variant, iters, warmup, batch=256):
    import numpy as np

    import fastopt
    sizes = MODELS[scenario]
    rng = np.random.default_rng(1)
    init = []
    for a, b in zip(sizes, sizes[1:]):
        init += [rng.standard_normal((a, b)) * np.sqrt(2 / a), np.zeros(b)]
    flat, views = fastopt.flatten(init, dtype=np.float32)
    gflat, gviews = fastopt.flatten([np.zeros_like(v) for v in views])
    ws, bs, gws, gbs = views[0::2], views[1::2], gviews[0::2], gviews[1::2]
    if variant == "numpy-adam":
        step = numpy_adam(flat, gflat)
    else:
        opt = fastopt.Adam(views, lr=LR)

        def step():
            opt.step(gviews)
    x, y = _data(sizes[0], sizes[-1])
    clock, times, losses = time.perf_counter, [], []
    for it in range(warmup + iters):
        lo = (it * batch) % (len(x) - batch + 1)
        xb, yb = x[lo:lo + batch], y[lo:lo + batch]
        acts = [xb]
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = acts[-1] @ w
            z += b
            if i < len(ws) - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
        z = acts[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        losses.append(float(-np.log(z[np.arange(batch), yb] + 1e-12).mean()))
        z[np.arange(batch), yb] -= 1
        d = z / batch
        for i in reversed(range(len(ws))):
            np.matmul(acts[i].T, d, out=gws[i])
            np.sum(d, axis=0, out=gbs[i])
            if i:
                d = d @ ws[i].T
                d *= acts[i] > 0
        t0 = clock()
        step()
        times.append(clock() - t0)
    return [{"scenario": scenario, "params": flat.size, "loss": [losses[0], losses[-1]],
             **_stats(times[warmup:])}]


def _torch_mlp(scenario, variant, iters, warmup, batch=256):
    import torch

    import fastopt.torch as ft
    sizes = MODELS[scenario]
    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = (torch.optim.Adam if variant == "torch-adam" else ft.Adam)(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = _data(sizes[0], sizes[-1])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    clock, times, losses = time.perf_counter, [], []
    for it in range(warmup + iters):
        lo = (it * batch) % (len(x) - batch + 1)
        opt.zero_grad()
        loss = loss_fn(model(x[lo:lo + batch]), y[lo:lo + batch])
        loss.backward()
        losses.append(loss.item())
        t0 = clock()
        opt.step()
        times.append(clock() - t0)
    return [{"scenario": scenario, "params": sum(p.numel() for p in model.parameters()),
             "torch_threads": torch.get_num_threads(), "loss": [losses[0], losses[-1]],
             **_stats(times[warmup:])}]


def _stepper(variant, duration, warmup, barrier, queue):
    """One process of ``two-procs``: a tight loop of 64K-element Adam steps for ``duration`` s."""
    import numpy as np

    import fastopt
    from fastopt._bench.buffers import flat_pair
    _configure(variant)
    p, g = flat_pair(TWO_PROCS_N, np.float32)
    if variant == "numpy-adam":
        step = numpy_adam(p, g)
    else:
        opt = fastopt.Adam(p, lr=LR)

        def step():
            opt.step(g)
    for _ in range(warmup):
        step()
    barrier.wait()  # both processes step together from here
    clock, times = time.perf_counter, []
    end = clock() + duration
    while True:
        t0 = clock()
        step()
        t1 = clock()
        times.append(t1 - t0)
        if t1 > end:
            break
    queue.put(_stats(times))


def _two_procs(scenario, variant, iters, warmup, duration=1.0):
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # fresh interpreters: no OpenMP pool forked mid-state
    rows = []
    for k, name in ((1, "two-procs:alone"), (2, "two-procs")):
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_stepper, args=(variant, duration, warmup, barrier, queue))
                 for _ in range(k)]
        for proc in procs:
            proc.start()
        try:
            each = [queue.get(timeout=TIMEOUT_S / 3) for _ in range(k)]
        finally:
            for proc in procs:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()
        worst = max(each, key=lambda s: s["median_us"])  # the slower process is the one waited on
        rows.append({"scenario": name, "params": TWO_PROCS_N,
                     "per_proc_median_us": [s["median_us"] for s in each], **worst})
    return rows


def _worker(argv):
    """Entry point of one variant's subprocess: print its rows as JSON on the last line."""
    scenario, variant, iters, warmup, duration = argv[0], argv[1], int(argv[2]), int(argv[3]), float(argv[4])
    import fastopt
    from fastopt import _threads
    _configure(variant)
    if scenario == "two-procs":
        rows = _two_procs(scenario, variant, iters, warmup, duration)
    elif scenario == "torch-mlp":
        rows = _torch_mlp(scenario, variant, iters, warmup)
    else:
        rows = _numpy_mlp(scenario, variant, iters, warmup)
    # the threads that run the step: NumPy's ufuncs use one; torch.optim its intra-op pool
    threads = {"numpy-adam": 1, "torch-adam": rows[0].get("torch_threads")}.get(variant, fastopt.get_num_threads())
    info = {"variant": variant, "threads": threads, "backend": fastopt.get_backend(),
            "spin": os.environ.get("GOMP_SPINCOUNT", "-"), "spin_status": _threads.spin_status(),
            "adaptive": _threads.adaptive_enabled()}
    print(json.dumps([{**r, **info} for r in rows]), flush=True)
    return 0
