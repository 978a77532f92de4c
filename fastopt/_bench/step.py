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


Here: ``run`` (the cases, their checks and the table) and the command line (``add_arguments``,
``main_from_args``, with ``--json`` and ``--plot``). The cases and the implementations are in
``fastopt._bench.impls``, the timing in ``fastopt._bench.timing``, the ceiling in
``fastopt._bench.ceiling``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np

from fastopt._bench.buffers import GRAD_SCALES
from fastopt._bench.ceiling import STREAM_KINDS, ceiling, ceiling_step
from fastopt._bench.impls import (AGAINST, DEFAULT_IMPLS, DEFAULT_OPTIMIZERS, DEFAULT_SIZES, IMPLS, OPTIMIZERS,
                                  Unsupported, bytes_per_element, make_stepper)
from fastopt._bench.plot import plot
from fastopt._bench.timing import MAX_SPREAD, busy_cpus, faults_per_step, measure


def agreement(steps, reference_label, dtype):
    """Which implementations' parameters (after the same warm-up steps) agree with the reference's."""
    ref = steps[reference_label].params
    rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-9
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return {label: bool(np.allclose(step.params, ref, rtol=rtol, atol=rtol * scale, equal_nan=True))
            for label, step in steps.items()}


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
