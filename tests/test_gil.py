"""Kernels release the GIL: a Python thread (a data loader, a logger) keeps running while another
thread is inside a step or a clipping helper, on the numba and cython backends."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

import fastopt
from tests.conftest import kernel_threads, require_backend

N = 1 << 25


def _longest_wait(work, calls=3):
    """``(longest gap between two iterations of a ticking thread, shortest call)`` while the main
    thread runs ``work`` ``calls`` times: a call that holds the GIL stalls the other thread for
    all of it, one that releases it for at most an interpreter switch interval."""
    ticks, stop = [], threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    work()  # warm-up (compiles on numba)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    t = threading.Thread(target=tick, daemon=True)
    t.start()
    try:
        time.sleep(0.01)
        durations, windows = [], []
        for _ in range(calls):
            t0 = time.perf_counter()
            work()
            t1 = time.perf_counter()
            durations.append(t1 - t0)
            windows.append((t0, t1))
            time.sleep(0.005)
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
    ts = np.array(ticks)
    gaps = [np.diff(ts[(ts >= t0) & (ts <= t1)], prepend=t0, append=t1).max() for t0, t1 in windows]
    return max(gaps), min(durations)


@pytest.fixture
def one_thread():
    """One kernel thread, so a core is free for the counting thread on a 2-core machine."""
    with kernel_threads(1):
        yield


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("what", ["Adam", "Lamb", "global_norm", "clip_grad_norm_"])
def test_a_python_thread_runs_during_a_long_call(backend, what, one_thread):
    require_backend(backend)
    rng = np.random.default_rng(0)
    n = N if what in ("Adam", "Lamb") else 2 * N  # a norm pass reads 4 bytes an element: longer
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    if what in ("Adam", "Lamb"):
        opt = getattr(fastopt, what)(p, backend=backend)
        work = lambda: opt.step(g)  # noqa: E731
    else:
        previous = fastopt.get_backend()
        fastopt.set_backend(backend)
        fn = getattr(fastopt, what)
        work = (lambda: fn([g])) if what == "global_norm" else (lambda: fn([g], 1e30))
    try:
        gap, call = _longest_wait(work)
    finally:
        if what not in ("Adam", "Lamb"):
            fastopt.set_backend(previous)
    # holding the GIL, the whole call is one gap (>= its duration); released, the gaps are switch
    # intervals (0.1 ms here) and the OS's scheduling of a loaded machine
    assert call > 5e-3  # long enough for the test to tell
    assert gap < 0.75 * call, (f"the other thread waited {gap * 1e3:.1f} ms during a {call * 1e3:.1f} ms "
                              f"{what} call on {backend}")
