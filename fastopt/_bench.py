"""``python -m fastopt bench``: time one optimizer step on one flat buffer, against NumPy and torch.

For each optimizer and size, every implementation steps the same parameters and gradients, held in
staggered flat buffers (``fastopt.flat.alloc_staggered``), on the same number of threads:

- ``fastopt[<backend>]``: the fused kernel;
- ``numpy``: ``fastopt.reference.STEPS`` (whole-array NumPy expressions with temporaries);
- ``torch-fused`` / ``torch-forloop``: ``torch.optim`` with ``fused=True`` / ``foreach=False``, when torch
  imports (an optimizer without a fused implementation, such as RMSprop, has no fused row).

Each implementation warms up 2 steps (JIT compilation and first-touch allocations are excluded);
then the implementations of one case are timed interleaved, in rotated order, for ``repeat_time``
seconds each or at least 3 samples, and the median time per step is reported.
GB/s counts the bytes a fused step must move per element (see ``bytes_per_element``).

The helpers here (``OPTIMIZERS``, ``make_stepper``, ``bytes_per_element``) are shared with the
pytest-benchmark suites in ``benchmarks/``.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

import numpy as np

DEFAULT_SIZES = (1_000, 65_536, 1_048_576, 16_777_216)

#: optimizer name -> hyperparameters used by every implementation (torch names; the source's defaults
#: otherwise). Every fastopt optimizer is here; the default run times ``DEFAULT_OPTIMIZERS``.
OPTIMIZERS = {
    "SGD": {"lr": 1e-3, "momentum": 0.9},
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3, "weight_decay": 1e-2},
    "RMSprop": {"lr": 1e-2},
    "Adagrad": {"lr": 1e-2},
    # the rest of torch.optim's elementwise rules
    "Adadelta": {"lr": 1.0},
    "Adamax": {"lr": 2e-3},
    "NAdam": {"lr": 2e-3},
    "RAdam": {"lr": 1e-3},
    "Rprop": {"lr": 1e-2},
    "ASGD": {"lr": 1e-2, "t0": 0.0},  # averaging on from the start: the rule's full traffic
    # Keras and optax
    "Ftrl": {"lr": 1e-3},
    "Lion": {"lr": 1e-4},
    "Yogi": {"lr": 1e-3},
    "AdaBelief": {"lr": 1e-3},
    "Adan": {"lr": 1e-3},
    "ScheduleFreeAdamW": {"lr": 2.5e-3},
    "ScheduleFreeSGD": {"lr": 1.0},
    # per-array statistics (two passes)
    "Lamb": {"lr": 1e-3},
    "LARS": {"lr": 1e-3},
    "Adafactor": {"lr": 1e-2},
}
DEFAULT_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")

IMPLS = ("fastopt", "numpy", "torch-fused", "torch-foreach", "torch-forloop", "deepspeed")
#: --against names (torch = torch's fused implementation)
AGAINST = {"numpy": "numpy", "torch": "torch-fused", "torch-fused": "torch-fused",
           "torch-foreach": "torch-foreach", "torch-forloop": "torch-forloop", "deepspeed": "deepspeed"}


class Unsupported(Exception):
    """This implementation cannot run this case (e.g. torch has no fused RMSprop)."""


def bytes_per_element(name, hyper, itemsize):
    """Bytes one fused step reads and writes per element: p read + write, g read, each state array
    the configuration uses read + write, plus what a multi-pass rule reads again
    (``Optimizer.extra_words_per_element``: LAMB's and LARS's statistics passes).

    Adam fp32: p 8 + g 4 + exp_avg 8 + exp_avg_sq 8 = 28 B (+8 with amsgrad); SGD with momentum 20
    (12 without); RMSprop 20 (+8 centered, +8 momentum); Adagrad 20. Factored states (Adafactor's
    row and column statistics of a matrix) are not per element; the bench's flat buffer is a vector.
    """
    import fastopt
    if name not in OPTIMIZERS and not hasattr(fastopt, name):
        raise ValueError(f"unknown optimizer {name!r}")
    dtype = np.float32 if itemsize == 4 else np.float64
    opt = getattr(fastopt, name)(np.zeros(2, dtype), **hyper)
    group = opt.param_groups[0]
    states = [name for name in opt._required_states(group)
              if opt._state_shape(name, opt._params[0], group) is not None]
    return (3 + 2 * len(states) + opt.extra_words_per_element) * itemsize


_BLOCK = 65536
_blocks = {}


def _block(dtype):
    """One block of deterministic (params, grads) values, tiled to any size (cheap even at 16M)."""
    key = np.dtype(dtype).str
    if key not in _blocks:
        rng = np.random.default_rng(0)
        # grads ~ N(0, 1e-2): g*g stays far from float32 denormals, which would slow every impl
        p = rng.standard_normal(_BLOCK).astype(dtype)
        g = (rng.standard_normal(_BLOCK) * 1e-2).astype(dtype)
        _blocks[key] = (p, g)
    return _blocks[key]


def _fill_tiled(dst, block):
    k = block.size
    full = dst.size // k
    dst[:full * k].reshape(full, k)[...] = block
    dst[full * k:] = block[:dst.size - full * k]


#: gradient scales: ``denormal`` puts float32 gradients at ~1e-39, below the smallest normal
#: float32 (1.2e-38): over 99% of them, their squares and the states they feed are denormals
GRAD_SCALES = {"normal": 1.0, "denormal": 1e-37}


def flat_pair(n, dtype, grads="normal"):
    """Fresh staggered (params, grads) buffers of ``n`` elements with deterministic values."""
    from fastopt.flat import alloc_staggered
    p0, g0 = _block(dtype)
    p = alloc_staggered(n, dtype, fill=None)
    g = alloc_staggered(n, dtype, fill=None)
    _fill_tiled(p, p0)
    _fill_tiled(g, g0)
    if GRAD_SCALES[grads] != 1.0:
        g *= np.dtype(dtype).type(GRAD_SCALES[grads])
    return p, g


def make_stepper(impl, name, n, dtype, *, backend=None, hyper=None, global_clipnorm=None, grads="normal",
                 flush_denormals=False):
    """A zero-argument callable doing one step of ``impl`` on fresh buffers of ``n`` elements.

    ``impl`` is one of ``IMPLS``; ``backend`` picks the fastopt backend (None: the active one).
    With ``global_clipnorm`` fastopt clips inside the step and torch calls ``clip_grad_norm_`` first.
    ``grads`` is a key of ``GRAD_SCALES``; ``flush_denormals`` is fastopt's option of that name.
    Raises ``Unsupported`` when the implementation cannot run this case.
    """
    hyper = dict(OPTIMIZERS[name] if hyper is None else hyper)
    p, g = flat_pair(n, dtype, grads)
    if impl == "fastopt":
        import fastopt
        opt = getattr(fastopt, name)(p, backend=backend, global_clipnorm=global_clipnorm,
                                     flush_denormals=flush_denormals, **hyper)
        step = opt.step

        def fastopt_step():
            step(g)
        fastopt_step.keep = (opt, p, g)
        fastopt_step.params = p
        return fastopt_step
    if impl == "numpy":
        if global_clipnorm is not None:
            raise Unsupported("numpy reference with clipping is not benchmarked")
        from fastopt.reference import STEPS
        update = STEPS[name]
        state = {}

        def numpy_step():
            update(p, g, state, **hyper)
        numpy_step.keep = (p, g, state)
        numpy_step.params = p
        return numpy_step
    if impl in TORCH_VARIANTS or impl == "deepspeed":
        try:
            import torch
        except ImportError as exc:
            raise Unsupported("torch is not installed") from exc
        param = torch.nn.Parameter(torch.from_numpy(p))  # shares the staggered buffer
        param.grad = torch.from_numpy(g)
        step = competitor_step(impl, name, [param], hyper, global_clipnorm)
        step.params = p  # the tensor shares this buffer
        return step
    raise ValueError(f"unknown implementation {impl!r}; choose from {IMPLS}")


#: keyword arguments that pick each torch.optim implementation
TORCH_VARIANTS = {"torch-fused": {"fused": True}, "torch-foreach": {"foreach": True},
                  "torch-forloop": {"foreach": False}}


def competitor_step(impl, name, params, hyper, global_clipnorm=None):
    """A zero-argument step of a competitor over torch ``params`` whose ``.grad`` is set:
    ``torch.optim`` (an ``impl`` of ``TORCH_VARIANTS``) or DeepSpeed's CPU Adam (``deepspeed``).
    With ``global_clipnorm``, ``torch.nn.utils.clip_grad_norm_`` runs before each step, as a torch
    user would. Raises ``Unsupported`` when ``impl`` cannot run here."""
    import torch

    import fastopt
    torch.set_num_threads(fastopt.get_num_threads())
    if impl == "deepspeed":
        try:
            from deepspeed.ops.adam import DeepSpeedCPUAdam
        except ImportError as exc:
            raise Unsupported("deepspeed is not installed") from exc
        if name not in ("Adam", "AdamW"):
            raise Unsupported("DeepSpeedCPUAdam is Adam/AdamW only")
        opt = DeepSpeedCPUAdam(params, adamw_mode=name == "AdamW", **hyper)
    else:
        if not hasattr(torch.optim, name):
            raise Unsupported(f"torch.optim has no {name}")
        try:
            opt = getattr(torch.optim, name)(params, **hyper, **TORCH_VARIANTS[impl])
        except (TypeError, ValueError, RuntimeError) as exc:
            if "fused" in str(exc):
                raise Unsupported(f"torch {torch.__version__} has no fused {name}") from exc
            raise Unsupported(f"torch.optim.{name}: {exc}") from exc
    clip = torch.nn.utils.clip_grad_norm_
    if global_clipnorm is None:
        def step():
            opt.step()
    else:
        def step():
            clip(params, global_clipnorm)
            opt.step()
    step.keep = (opt, params)
    return step


#: a row whose interquartile range exceeds this fraction of its median is re-timed, and
#: reported as noisy (with no ratio) if it still does
MAX_SPREAD = 0.20


def measure(steps, repeat_time=0.15, min_samples=3, warmup=2, max_spread=MAX_SPREAD, extend=4):
    """Median and min seconds per call of each ``steps[label]()``, measured interleaved.

    After ``warmup`` calls each (JIT compilation and first-step allocations excluded), rounds
    time one batch of every implementation in rotated order, until each has had about
    ``repeat_time`` seconds and ``min_samples`` samples: memory bandwidth on a shared machine
    drifts by tens of percent within seconds, and interleaving exposes every implementation to
    the same drift, so their ratios hold within one run. Batches last ~1 ms, so the timer's
    own cost does not dominate microsecond steps. While a label's IQR is over ``max_spread`` of
    its median, its sampling goes on, up to ``extend`` times ``repeat_time``; ``noisy`` says it
    stayed over.
    """
    clock = time.perf_counter
    labels = list(steps)
    batch = {}
    for label in labels:
        step = steps[label]
        for _ in range(warmup - 1):
            step()
        t0 = clock()
        step()
        est = max(clock() - t0, 1e-7)
        batch[label] = max(1, min(1000, int(1e-3 / est)))
    samples = {label: [] for label in labels}
    spent = dict.fromkeys(labels, 0.0)
    rnd = 0
    def spread(v):
        if len(v) < 4:
            return math.inf
        q = statistics.quantiles(v, n=4)
        return (q[2] - q[0]) / statistics.median(v)

    def wanted(x):
        if len(samples[x]) < min_samples or spent[x] < repeat_time:
            return True
        return spent[x] < extend * repeat_time and spread(samples[x]) > max_spread

    while any(wanted(x) for x in labels):
        order = labels[rnd % len(labels):] + labels[:rnd % len(labels)]
        rnd += 1
        for label in order:
            if not wanted(label):
                continue
            step, k = steps[label], batch[label]
            t0 = clock()
            for _ in range(k):
                step()
            dt = clock() - t0
            spent[label] += dt
            samples[label].append(dt / k)
            # re-fit the batch to ~1 ms: with other processes busy, a threaded step can stall
            # ~8 ms at its barrier, and a batch fitted to the warm-up step would then take
            # seconds per sample (the default run went past 60 s that way)
            batch[label] = max(1, min(1000, int(1e-3 / max(dt / k, 1e-7))))
    out = {}
    for label, v in samples.items():
        q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0], v[0], v[0]]
        med = statistics.median(v)
        out[label] = {"median_s": med, "min_s": min(v), "samples": len(v),
                      "iqr_s": q[2] - q[0], "calls_per_sample": batch[label],
                      "noisy": (q[2] - q[0]) / med > max_spread}
    return out


STREAM_KINDS = {"copy": (0, 2), "triad": (1, 3), "update": (2, 3)}  # kernel kind, words per element


def ceiling(n, dtype="float32", backend=None, repeat_time=0.1):
    """The memory ceiling at ``n`` elements: GB/s of STREAM-like copy, triad and update kernels
    (fastopt's chunking and threads), and ``best``, the highest of them.

    Bytes count what each kernel reads and writes (no write-allocate), as for the optimizers.
    """
    from fastopt import _backends
    from fastopt.flat import alloc_staggered
    dtype = np.dtype(dtype)
    be = _backends.backend(backend)
    a, b, c = (alloc_staggered(n, dtype, fill=1.0) for _ in range(3))
    nchunks = _backends.chunks_for(n)
    kern = be.kernel("stream", dtype, nchunks > 1)
    steps = {kind: (lambda k=k: kern(a, b, c, 0.5, k, nchunks)) for kind, (k, _) in STREAM_KINDS.items()}
    stats = measure(steps, repeat_time=repeat_time)
    out = {kind: STREAM_KINDS[kind][1] * dtype.itemsize * n / st["median_s"] / 1e9 for kind, st in stats.items()}
    out["best"] = max(out.values())
    return out


def ceiling_step(n, dtype, backend=None):
    """A zero-argument call of the STREAM-like update kernel (a = a + s * b) over ``n`` elements."""
    from fastopt import _backends
    from fastopt.flat import alloc_staggered
    dtype = np.dtype(dtype)
    a, b = alloc_staggered(n, dtype, fill=1.0), alloc_staggered(n, dtype, fill=1e-3)
    nchunks = _backends.chunks_for(n)
    kern = _backends.backend(backend).kernel("stream", dtype, nchunks > 1)

    def update():
        kern(a, b, b, -0.0, 2, nchunks)  # s = -0: a stays 1.0, no drift to denormals or inf
    return update


def faults_per_step(step, steps=3):
    """Minor page faults per call of ``step()`` (process-wide; Linux and macOS)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def agreement(steps, reference_label, dtype):
    """Which implementations' parameters (after the same warm-up steps) agree with the reference's."""
    ref = steps[reference_label].params
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return {label: bool(np.allclose(step.params, ref, rtol=rtol, atol=rtol * scale, equal_nan=True))
            for label, step in steps.items()}


def busy_cpus(samples=20, interval=0.005):
    """Median number of runnable tasks besides this one (Linux; None elsewhere).

    Other busy processes make every multi-threaded step wait for a time slice at its barrier
    (medians jump to multiples of ~4 ms on a 2-core machine), so the bench warns about them.
    """
    counts = []
    try:
        for _ in range(samples):
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("procs_running"):
                        counts.append(int(line.split()[1]) - 1)
                        break
            time.sleep(interval)
    except OSError:
        return None
    return statistics.median(counts) if counts else None


def _header(threads, dtype, backends, impls):
    from fastopt import __version__, _backends
    from fastopt._config import _cpu_name
    lines = [f"fastopt {__version__} bench: one step on one flat {np.dtype(dtype).name} buffer, median time per step",
             f"cpu: {_cpu_name()} ({_backends._cpu_count()} cores available), threads: {threads}"]
    versions = [f"numpy {np.__version__}"]
    for b in backends:
        versions.append(f"fastopt[{b}] {_backends.backend(b).version()}".strip())
    if any(i.startswith("torch") for i in impls):
        try:
            import torch
            versions.append(f"torch {torch.__version__}")
        except ImportError:
            versions.append("torch not installed (torch rows skipped)")
    lines.append(", ".join(versions))
    return lines


DEFAULT_IMPLS = ("fastopt", "numpy", "torch-fused", "torch-forloop")


def run(sizes=DEFAULT_SIZES, optimizers=DEFAULT_OPTIMIZERS, dtype="float32", threads=None,
        backends=None, impls=DEFAULT_IMPLS, repeat_time=0.15, out=sys.stdout, grads="normal",
        flush_denormals=False):
    """Run the benchmark, print the table to ``out`` (None: silent) and return the result dicts.

    Per case: every implementation steps the same values twice (warm-up), their parameters are
    compared (``agrees``), page faults are counted over 3 more steps, then all are timed
    interleaved. Per size, the memory ceiling is measured with the STREAM-like kernels at the
    same thread count; ``pct_ceiling`` is a row's GB/s as a percentage of the best of them.
    ``grads="denormal"`` times denormal-heavy gradients (``GRAD_SCALES``); ``flush_denormals``
    adds fastopt rows with that option on (``fastopt[<backend>,ftz]``).
    """
    import fastopt
    from fastopt import _backends
    dtype = np.dtype(dtype)
    if threads is not None:
        fastopt.set_num_threads(threads)  # torch follows in make_stepper
    threads = fastopt.get_num_threads()
    backends = list(backends or [fastopt.get_backend()])
    for b in backends:
        _backends.backend(b)  # fails early, with the install hint, if unavailable
    rows = []
    say = (lambda *a, **k: print(*a, **k, file=out, flush=True)) if out is not None else (lambda *a, **k: None)
    for line in _header(threads, dtype, backends, impls):
        say(line)
    busy = busy_cpus()
    if busy:
        say(f"WARNING: {busy:g} other runnable task(s) on this machine: multi-threaded timings will be noisy")
    ceilings = {}
    for n in sizes:
        ceilings[n] = ceiling(n, dtype, backends[0])
        rows.append({"impl": "ceiling", "size": n, "dtype": dtype.name, "threads": threads, **ceilings[n]})
    say("memory ceiling (GB/s; STREAM-like copy / triad / update at the same threads): " + ", ".join(
        f"{n}: {c['copy']:.0f}/{c['triad']:.0f}/{c['update']:.0f}" for n, c in ceilings.items()))
    say()
    w = max([9] + [len(name) for name in optimizers])
    head = (f"{'optimizer':<{w}} {'size':>10} {'impl':<16} {'us/step':>10} {'+-IQR':>6} {'GB/s':>7} "
            f"{'%ceil':>6} {'faults':>6} {'speedup':>8}")
    say(head)
    say("-" * len(head))
    for name in optimizers:
        hyper = OPTIMIZERS[name]
        bpe = bytes_per_element(name, hyper, dtype.itemsize)
        for n in sizes:
            case_rows = []
            variants = [("fastopt", b, False) for b in backends if "fastopt" in impls]
            variants += [("fastopt", b, True) for b in backends if "fastopt" in impls and flush_denormals]
            variants += [(i, None, False) for i in impls if i != "fastopt"]
            labels = [f"fastopt[{backend}{',ftz' if ftz else ''}]" if impl == "fastopt" else impl
                      for impl, backend, ftz in variants]
            steps, backend_of = {}, {}
            for label, (impl, backend, ftz) in zip(labels, variants):
                try:
                    steps[label] = make_stepper(impl, name, n, dtype, backend=backend, grads=grads,
                                                flush_denormals=ftz)
                    backend_of[label] = backend
                except Unsupported as exc:
                    case_rows.append({"optimizer": name, "size": n, "impl": label, "skipped": str(exc)})
            for step in steps.values():  # warm-up: JIT, first-touch faults, lazily created state
                step()
                step()
            agrees = agreement(steps, next(iter(steps)), dtype) if steps else {}
            faults = {label: faults_per_step(step) for label, step in steps.items()}
            # the ceiling is timed interleaved with the case, so drift hits it as it hits them
            # sized to move the optimizer's bytes, so both live in the same level of the hierarchy
            n_ceil = max(1, round(n * bpe / (STREAM_KINDS["update"][1] * dtype.itemsize)))
            timed = measure({**steps, "ceiling": ceiling_step(n_ceil, dtype, backends[0])},
                            repeat_time=repeat_time, warmup=1)
            ceil_gbps = bpe * n / timed.pop("ceiling")["median_s"] / 1e9
            case_rows.append({"optimizer": name, "size": n, "impl": "ceiling(update)", "gbps": ceil_gbps,
                              "dtype": dtype.name, "threads": threads})
            for label, stats in timed.items():
                t = stats["median_s"]
                gbps = bpe * n / t / 1e9
                case_rows.append({"optimizer": name, "size": n, "impl": label, "backend": backend_of[label],
                                  "dtype": dtype.name, "threads": threads, "bytes_per_element": bpe,
                                  "time_us": t * 1e6, "min_us": stats["min_s"] * 1e6,
                                  "iqr_pct": 100 * stats["iqr_s"] / t, "samples": stats["samples"],
                                  "calls_per_sample": stats["calls_per_sample"], "gbps": gbps,
                                  "noisy": stats["noisy"],
                                  "pct_ceiling": 100 * gbps / ceil_gbps,
                                  "faults_per_step": faults[label], "agrees": agrees[label]})
            del steps
            gc.collect()  # free this case's buffers before the next allocates its own
            order = {label: k for k, label in enumerate(labels)}
            case_rows.sort(key=lambda r: order.get(r["impl"], len(order)))
            ref = next((r for r in case_rows if r["impl"].startswith("fastopt") and "time_us" in r), None)
            case_rows.sort(key=lambda r: r["impl"] != "ceiling(update)")
            for r in case_rows:
                if r["impl"] == "ceiling(update)":
                    say(f"{name:<{w}} {n:>10} {r['impl']:<16} {'':>10} {'':>6} {r['gbps']:>7.1f} {'100%':>6}")
                    continue
                if "skipped" in r:
                    say(f"{name:<{w}} {n:>10} {r['impl']:<16} {'-':>10}  {r['skipped'].splitlines()[0][:60]}")
                    continue
                # a ratio only where both sides were measured within the spread bound
                if r["noisy"] or (ref is not None and ref["noisy"]):
                    sp = "noisy"
                elif ref is not None:
                    r["fastopt_speedup"] = r["time_us"] / ref["time_us"]
                    sp = f"{r['fastopt_speedup']:.3g}x"
                else:
                    sp = ""
                flt = "-" if r["faults_per_step"] is None else f"{r['faults_per_step']:.0f}"
                flag = "" if r["agrees"] else "  RESULTS DIFFER from the first implementation"
                say(f"{name:<{w}} {n:>10} {r['impl']:<16} {r['time_us']:>10.1f} {r['iqr_pct']:>5.0f}% "
                    f"{r['gbps']:>7.1f} {r['pct_ceiling']:>5.0f}% {flt:>6} {sp:>8}{flag}")
            rows.extend(case_rows)
    say("-" * len(head))
    busy = busy_cpus()
    if busy:
        say(f"WARNING: {busy:g} other runnable task(s) at the end of the run: multi-threaded timings may be noisy")
    say("speedup = time of that row / time of " + (f"fastopt[{backends[0]}]" if "fastopt" in impls else "fastopt")
        + f"; GB/s counts the bytes a fused step reads and writes per element (Adam {dtype.name}: "
        + f"{bytes_per_element('Adam', {}, dtype.itemsize)} B); %ceil = GB/s / that of the read-modify-write "
        + "update kernel a = a + s*b moving the same bytes, timed interleaved in the same case; faults = minor page faults per step after warm-up; "
        + f"+-IQR = interquartile range / median; a row whose IQR stays over {MAX_SPREAD:.0%} after "
        + "4x the sampling time says 'noisy' instead of a speedup (other tasks were taking the cores)")
    return rows


def plot(rows, path):
    """A PNG of GB/s against size: one panel per optimizer, a line per implementation, and the
    ceiling measured interleaved with that optimizer's cases as a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["optimizer"] for r in rows if "optimizer" in r))
    impls = list(dict.fromkeys(r["impl"] for r in rows if "optimizer" in r and r["impl"] != "ceiling(update)"))
    colors = {impl: f"C{k}" for k, impl in enumerate(impls)}
    cols = min(3, max(1, len(names)))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        series = {}
        for r in rows:
            if r.get("optimizer") == name and "gbps" in r:
                series.setdefault(r["impl"], []).append((r["size"], r["gbps"]))
        for impl, pts in series.items():
            pts.sort()
            if impl == "ceiling(update)":
                ax.plot(*zip(*pts), "k--", label="ceiling (update kernel, same bytes)")
            else:
                ax.plot(*zip(*pts), marker="o", color=colors[impl], label=impl)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("elements")
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes[0][0].set_ylabel("GB/s (bytes a fused step moves)")
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle("fastopt bench: one optimizer step on one flat buffer (interleaved medians)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _csv(kind, choices=None):
    def parse(text):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty {kind} list")
        if kind == "size":
            try:
                return [int(x.replace("_", "")) for x in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"sizes must be integers, got {text!r}") from None
        if choices is not None:
            lookup = {c.lower(): c for c in choices}
            bad = [x for x in items if x.lower() not in lookup]
            if bad:
                raise argparse.ArgumentTypeError(f"unknown {kind} {bad}; choose from {', '.join(choices)}")
            return [lookup[x.lower()] for x in items]
        return items
    return parse


def add_arguments(parser):
    """Add the ``bench`` options to an argparse parser."""
    parser.add_argument("--sizes", type=_csv("size"), default=list(DEFAULT_SIZES),
                        help="comma-separated element counts (default: 1000,65536,1048576,16777216)")
    parser.add_argument("--optimizers", type=_csv("optimizer", tuple(OPTIMIZERS) + ("all",)),
                        default=list(DEFAULT_OPTIMIZERS),
                        help=f"comma-separated subset of {','.join(OPTIMIZERS)}, or 'all' "
                             f"(default: {','.join(DEFAULT_OPTIMIZERS)})")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fastopt and torch (default: fastopt.get_num_threads())")
    parser.add_argument("--backend", type=_csv("backend", ("numba", "cython", "python")), default=None,
                        help="fastopt backend(s), comma-separated (default: the active one)")
    parser.add_argument("--impls", type=_csv("impl", IMPLS), default=None,
                        help=f"comma-separated subset of {','.join(IMPLS)} (default: {','.join(DEFAULT_IMPLS)})")
    parser.add_argument("--against", type=_csv("competitor", tuple(AGAINST)), default=None,
                        help="competitors besides fastopt, each used when it imports: "
                             f"{','.join(AGAINST)} (torch = fused); default: numpy,torch,torch-forloop")
    parser.add_argument("--plot", metavar="PATH", default=None,
                        help="write a PNG of GB/s against size with the measured ceiling (needs matplotlib)")
    parser.add_argument("--repeat-time", type=float, default=0.15,
                        help="seconds of repeats per measurement after 2 warm-up steps (default 0.15)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write every result to PATH as JSON")
    parser.add_argument("--grads", choices=tuple(GRAD_SCALES), default="normal",
                        help="gradient values: normal (N(0, 1e-2)) or denormal (float32 denormals, ~1e-39)")
    parser.add_argument("--flush-denormals", action="store_true",
                        help="add fastopt rows with flush_denormals=True (FTZ/DAZ in the kernels)")


def main_from_args(args):
    """Run ``bench`` from parsed arguments; returns the exit code."""
    import fastopt
    from fastopt._config import config
    if args.threads is not None and args.threads < 1:
        print("fastopt bench: --threads must be >= 1", file=sys.stderr)
        return 2
    impls = list(args.impls or DEFAULT_IMPLS)
    if args.against is not None:
        impls = ["fastopt"] + list(dict.fromkeys(AGAINST[a] for a in args.against))
    try:
        t0 = time.perf_counter()
        names = list(OPTIMIZERS) if "all" in args.optimizers else args.optimizers
        rows = run(sizes=args.sizes, optimizers=names, dtype=args.dtype, threads=args.threads,
                   backends=args.backend, impls=impls, repeat_time=args.repeat_time, grads=args.grads,
                   flush_denormals=args.flush_denormals)
        wall = time.perf_counter() - t0
    except fastopt.BackendUnavailable as exc:
        print(f"fastopt bench: {exc}", file=sys.stderr)
        return 2
    print(f"wall time {wall:.1f} s")
    if args.json:
        payload = {"config": {k: str(v) for k, v in config().items()},
                   "options": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
                   "wall_s": wall, "results": rows}
        with open(os.fspath(args.json), "w") as f:
            json.dump(payload, f, indent=1)
        print(f"results written to {args.json}")
    if args.plot:
        try:
            plot(rows, args.plot)
        except ImportError:
            print("fastopt bench: --plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return 2
        print(f"plot written to {args.plot}")
    return 0
