"""The thread policy (fastopt/_threads.py): the serial/parallel choice from measured times, the
bounded spin of idle OpenMP workers, and fastopt's pool under threadpoolctl."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastopt
from fastopt import _backends, _threads
from tests.conftest import kernel_threads, require_backend


def drive(choice, times, calls):
    """Run ``calls`` calls of ``choice``, each timed by ``times(parallel, k)``; returns the ways run."""
    ways = []
    for k in range(calls):
        par = choice.pick()
        ways.append(par)
        choice.record(par, times(par, k))
    return ways


def test_choice_tries_both_ways_first_then_keeps_the_faster():
    c = _threads.Choice()
    ways = drive(c, lambda par, k: 100 if par else 300, 6)
    assert ways == [True] * 3 + [False] * 3  # a try is 3 calls, the first (waking workers) not counted
    assert c.parallel
    ways = drive(c, lambda par, k: 100 if par else 300, 400)
    starts = [k for k, w in enumerate(ways) if not w and (k == 0 or ways[k - 1])]
    # the losing way is tried again, 3 calls a time, at growing intervals (16, 32, 64, ...)
    assert all(ways[k:k + 3] == [False] * 3 for k in starts)
    gaps = np.diff(starts)
    assert len(starts) >= 2 and all(b > a for a, b in zip(gaps, gaps[1:])) and gaps[0] >= 16


def test_choice_goes_serial_when_parallel_is_slower():
    c = _threads.Choice()
    ways = drive(c, lambda par, k: 3000 if par else 200, 100)
    assert not c.parallel
    assert sum(ways[6:]) <= 9  # a few tries of parallel in 94 calls


def test_choice_follows_a_change_of_load():
    c = _threads.Choice()
    drive(c, lambda par, k: 100 if par else 300, 50)
    assert c.parallel
    # another pool starts: parallel becomes 20x slower; after two slow calls serial is tried, and kept
    ways = drive(c, lambda par, k: 2000 if par else 300, 5)
    assert ways == [True, True, False, False, False] and not c.parallel
    # the load goes: parallel wins again at its next try
    drive(c, lambda par, k: 100 if par else 300, 2 * _threads.Choice.MAX_INTERVAL)
    assert c.parallel


def test_choice_needs_a_clear_win_to_switch():
    c = _threads.Choice()
    drive(c, lambda par, k: 100 if par else 105, 300)  # serial 5% slower, then 5% faster
    assert c.parallel
    drive(c, lambda par, k: 100 if par else 95, 300)
    assert c.parallel  # within the 10% margin: no flapping


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize("name,kw", [("Adam", {}), ("SGD", dict(momentum=0.9, nesterov=True)),
                                     ("RMSprop", dict(centered=True, momentum=0.5)), ("Lamb", {})])
def test_adaptive_steps_equal_parallel_steps_bit_for_bit(backend, name, kw, monkeypatch):
    """Whichever way the policy runs a call, the bits are those of the parallel kernel."""
    require_backend(backend)
    n = _backends.PARALLEL_THRESHOLD * 2 + 17
    rng = np.random.default_rng(0)
    p0, grads = rng.standard_normal(n).astype(np.float32), rng.standard_normal((12, n)).astype(np.float32)
    out = {}
    with kernel_threads(2):
        for mode in ("fixed", "adaptive"):
            monkeypatch.setattr(_threads, "adaptive_enabled", lambda environ=None, m=mode: m == "adaptive")
            be = _backends.backend(backend)
            saved = dict(be._cache)
            be._cache.clear()
            try:
                p = p0.copy()
                opt = getattr(fastopt, name)(p, backend=backend, **kw)
                for g in grads:
                    opt.step(g)
                out[mode] = p
                kern = be.kernel(opt._plan.calls[0].kernel_name, np.float32, True) if name != "Lamb" else None
            finally:
                be._cache.clear()
                be._cache.update(saved)
            if mode == "adaptive" and kern is not None:
                choice = kern.choices[n]
                assert choice.calls == 12  # every step went through the policy
    np.testing.assert_array_equal(out["fixed"], out["adaptive"])


def test_adaptive_serial_call_gets_one_chunk():
    seen = []
    call = _threads.adaptive(lambda *a: seen.append(("serial", a[-1])), lambda *a: seen.append(("parallel", a[-1])),
                             {})
    x = np.zeros(10)
    for _ in range(4):
        call(x, 2.0, 8)
    assert seen == [("parallel", 8)] * 3 + [("serial", 1)]
    unchunked = _threads.adaptive(lambda *a: seen.append(("serial", a)), lambda *a: seen.append(("parallel", a)),
                                  {}, chunked=False)
    seen.clear()
    unchunked(x, 3)
    unchunked(x, 3)
    assert [a[1][1:] for a in seen] == [(3,), (3,)]


def test_bound_spin_respects_the_users_setting():
    env = {}
    assert _threads.bound_spin(env) and env["GOMP_SPINCOUNT"] == str(_threads.SPINCOUNT)
    for key, value in [("GOMP_SPINCOUNT", "5"), ("OMP_WAIT_POLICY", "active")]:
        env = {key: value}
        assert not _threads.bound_spin(env) and env == {key: value}


def _python(code, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120, check=True).stdout.strip()


def test_import_bounds_the_spin_unless_the_user_chose():
    code = "import os, fastopt; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    assert _python(code) == f"{_threads.SPINCOUNT} None"
    assert _python(code, GOMP_SPINCOUNT="7") == "7 None"
    assert _python(code, OMP_WAIT_POLICY="passive") == "None passive"


def test_fastopt_adaptive_0_runs_the_parallel_kernel_as_is():
    code = ("import numpy as np, fastopt\nfrom fastopt import _backends\n"
            "k = _backends.backend('numba').kernel('sgd', np.float32, True)\nprint(hasattr(k, 'choices'))")
    assert _python(code, FASTOPT_ADAPTIVE="0") == "False"
    assert _python(code) == "True"


def test_threadpoolctl_sees_and_limits_fastopt():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    require_backend("cython")  # the pool's library is the Cython build's fastopt_threads module
    with kernel_threads(2):
        info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastopt"]
        assert len(info) == 1 and info[0]["num_threads"] == 2
        with threadpoolctl.threadpool_limits(1):
            assert fastopt.get_num_threads() == 1
        assert fastopt.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(limits=1, user_api="fastopt"):
            assert fastopt.get_num_threads() == 1
        assert fastopt.get_num_threads() == 2
