"""``python -m fastopt bench-sweep``: GB/s of a step over sizes 2^10..2^26, arrays allocated three ways.

A kernel can be fast in the benchmark's staggered buffers and slow where a user's arrays happen to
lie (a vector loop left for a scalar fallback by a runtime overlap check, 4K aliasing between the
operands). The sweep steps each configuration at every power of two, on:

- ``heap``: parameters and gradients as a user makes them (``standard_normal(n).astype(float32)``,
  each its own allocation: under glibc's mmap threshold from the heap, above it page-aligned mmaps,
  all with the same offset modulo 4096), the optimizer's states its own;
- ``offset64``: the same, each array starting 64 bytes into its allocation;
- ``staggered``: fastopt's own staggered flat buffers (``fastopt.flat.alloc_staggered``).

A size whose GB/s is below half of both its neighbours' is a cliff, and the run says so loudly
(and exits 1 with ``--strict``): a step between cache levels lowers GB/s for good, a cliff comes
back up at the next size. Rows whose spread stays over the bound are marked noisy, not judged.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys

import numpy as np

#: (label, optimizer, hyperparameters): the conventions and options that once had a cliff
CONFIGS = (("Adam", "Adam", {}), ("Adam-keras", "Adam", {"convention": "keras"}),
           ("AdamW-amsgrad", "AdamW", {"amsgrad": True}), ("RMSprop-keras", "RMSprop", {"convention": "keras"}),
           ("RMSprop-centered", "RMSprop", {"centered": True, "momentum": 0.9}),
           ("SGD-nesterov", "SGD", {"momentum": 0.9, "nesterov": True}))
ALLOCATIONS = ("heap", "offset64", "staggered")


def arrays(n, dtype, how, rng):
    """Parameters and gradients of ``n`` elements allocated ``how`` (see the module docstring)."""
    if how == "staggered":
        from fastopt._bench.buffers import flat_pair
        return flat_pair(n, dtype)
    pad = 64 // np.dtype(dtype).itemsize if how == "offset64" else 0

    def one(scale):
        a = np.empty(n + pad, dtype)[pad:]
        a[...] = rng.standard_normal(n) * scale
        return a
    return one(1.0), one(1e-2)


def cliffs(series):
    """Indices of the points below half of both neighbours' GB/s (noisy points are not judged)."""
    out = []
    for i in range(1, len(series) - 1):
        left, mid, right = series[i - 1], series[i], series[i + 1]
        if any(r.get("noisy") for r in (left, mid, right)):
            continue
        if mid["gbps"] < 0.5 * left["gbps"] and mid["gbps"] < 0.5 * right["gbps"]:
            out.append(i)
    return out


def run(exps=range(10, 27), configs=CONFIGS, allocations=ALLOCATIONS, dtype="float32", backend=None,
        repeat_time=0.05, out=sys.stdout):
    """Sweep; print a table (GB/s, one column per configuration and allocation) and the cliffs."""
    import fastopt
    from fastopt._bench.impls import bytes_per_element
    from fastopt._bench.timing import measure
    dtype = np.dtype(dtype)
    backend = backend or fastopt.get_backend()
    say = (lambda *a: print(*a, file=out, flush=True)) if out is not None else (lambda *a: None)
    say(f"fastopt bench-sweep: {dtype.name}, backend {backend}, {fastopt.get_num_threads()} threads; "
        "GB/s = bytes a fused step moves / median step time")
    rng = np.random.default_rng(0)
    rows, series = [], {}
    for label, name, hyper in configs:
        bpe = bytes_per_element(name, {k: v for k, v in hyper.items() if k != "convention"}, dtype.itemsize)
        for how in allocations:
            key = f"{label}/{how}"
            series[key] = []
            for e in exps:
                n = 1 << e
                p, g = arrays(n, dtype, how, rng)
                opt = getattr(fastopt, name)(p, lr=1e-3, backend=backend, **hyper)
                opt.step(g)
                st = measure({"step": lambda: opt.step(g)}, repeat_time=repeat_time, warmup=1)["step"]
                row = {"config": label, "allocation": how, "size": n, "backend": backend,
                       "time_us": st["median_s"] * 1e6, "iqr_pct": 100 * st["iqr_s"] / st["median_s"],
                       "gbps": bpe * n / st["median_s"] / 1e9, "noisy": st["noisy"],
                       "p_offset_mod_4096": p.ctypes.data % 4096}
                rows.append(row)
                series[key].append(row)
                del opt, p, g
                gc.collect()
    keys = list(series)
    say(f"{'size':>8} " + " ".join(f"{k:>{max(9, len(k))}}" for k in keys))
    flagged = {k: set(cliffs(series[k])) for k in keys}
    for i, e in enumerate(exps):
        cells = []
        for k in keys:
            r = series[k][i]
            mark = "!!" if i in flagged[k] else ("~" if r["noisy"] else "")
            cells.append(f"{r['gbps']:.1f}{mark}".rjust(max(9, len(k))))
        say(f"{'2^' + str(e):>8} " + " ".join(cells))
    found = [(k, i) for k in keys for i in sorted(flagged[k])]
    for k, i in found:
        s = series[k]
        say(f"CLIFF: {k} at {s[i]['size']} elements: {s[i]['gbps']:.1f} GB/s against "
            f"{s[i - 1]['gbps']:.1f} and {s[i + 1]['gbps']:.1f} at its neighbours")
        s[i]["cliff"] = True
    say("no cliffs: every size within 2x of a neighbour" if not found else
        f"{len(found)} CLIFF(S) FOUND")
    say("!! = a cliff (below half of both neighbours); ~ = noisy (IQR over 20% after re-timing; not judged)")
    return rows, found


def add_arguments(parser):
    parser.add_argument("--min-exp", type=int, default=10, help="smallest size 2^k (default 10)")
    parser.add_argument("--max-exp", type=int, default=26, help="largest size 2^k (default 26: 64M elements)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated subset of " + ",".join(c[0] for c in CONFIGS))
    parser.add_argument("--allocations", default=",".join(ALLOCATIONS), help="comma-separated subset of "
                        + ",".join(ALLOCATIONS))
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--backend", default=None, help="numba, cython or python (default: the active one)")
    parser.add_argument("--repeat-time", type=float, default=0.05, help="seconds of repeats per point")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the points to PATH as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a cliff is found")


def main_from_args(args):
    known = {c[0]: c for c in CONFIGS}
    wanted = args.configs.split(",") if args.configs else list(known)
    bad = [c for c in wanted if c not in known]
    allocs = args.allocations.split(",")
    if bad or any(a not in ALLOCATIONS for a in allocs) or not 0 <= args.min_exp <= args.max_exp <= 30:
        print(f"fastopt bench-sweep: unknown configs {bad} or allocations {allocs}, or exponents out of 0..30",
              file=sys.stderr)
        return 2
    rows, found = run(range(args.min_exp, args.max_exp + 1), [known[c] for c in wanted], allocs, args.dtype,
                      args.backend, args.repeat_time)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if (found and args.strict) else 0


def main(argv=None):  # pragma: no cover - the CLI entry is fastopt.__main__
    parser = argparse.ArgumentParser(prog="fastopt bench-sweep")
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))
