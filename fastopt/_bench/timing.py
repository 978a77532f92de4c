"""Timing for the benchmarks: ``measure`` times steps interleaved, re-times a row whose spread
(IQR / median) is over ``MAX_SPREAD`` and marks it ``noisy`` if it stays over; and what disturbs a
timing: ``faults_per_step`` (minor page faults) and ``busy_cpus`` (other runnable tasks).
"""
from __future__ import annotations

import math
import statistics
import time

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
