"""The thread policy: how fastopt's kernel threads wait, how many step, and when a step runs serially.

Inside a training loop fastopt's workers share the cores with other pools (OpenBLAS's, torch's
intra-op pool, another process's). Three rules keep a step never much slower than one thread:

- **Idle workers sleep soon.** Both backends run their parallel kernels on GNU OpenMP (Numba's
  ``omp`` threading layer, the Cython build's ``prange``), whose workers spin after each parallel
  region for ``GOMP_SPINCOUNT`` iterations (300,000 by default: milliseconds, during which they
  hold cores the caller's next matmul needs). Unless the user set ``GOMP_SPINCOUNT`` or
  ``OMP_WAIT_POLICY``, importing fastopt bounds the spin to :data:`SPINCOUNT` (tens of
  microseconds: long enough for the norm pass and the update pass of one step to share a wake-up).
  It applies when fastopt is the first to load libgomp, as it usually is (torch and scikit-learn
  carry their own copies); ``show_config`` says whether it did.
- **Threads from the affinity mask**, shared among a launcher's ranks (``default_threads`` in
  ``_backends``).
- **Serial or parallel, measured.** A kernel above the parallel threshold is timed on every call
  (two clock reads); per kernel, dtype and size a :class:`Choice` first tries both ways, then runs
  the faster one and re-tries the other now and then (sooner when the chosen way slows down,
  rarer while it keeps winning). Serial and parallel runs give the same bits (elementwise kernels;
  the reductions use fixed chunks), so the choice never changes a result. ``FASTOPT_ADAPTIVE=0``
  always runs parallel above the threshold.

``threadpoolctl`` sees fastopt's pool (``fastopt._threadpoolctl``): ``threadpool_limits(1)``
limits fastopt too, and ``threadpool_info()`` lists it with ``user_api="fastopt"``.
"""
from __future__ import annotations

import math
import os
import time

#: spin iterations of an idle libgomp worker before it sleeps, when the user set none (~10-60 us
#: on current x86 cores, against libgomp's 300,000)
SPINCOUNT = 2000

_spin = {"set": False, "libgomp_loaded_before": False}


def bound_spin(environ=None):
    """Set ``GOMP_SPINCOUNT`` to :data:`SPINCOUNT` unless the user chose a wait policy. Returns
    whether it was set. libgomp reads it when it loads, so this runs at fastopt's import."""
    environ = os.environ if environ is None else environ
    if "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return False
    environ["GOMP_SPINCOUNT"] = str(SPINCOUNT)
    return True


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as f:
            return any("libgomp.so" in line for line in f)
    except OSError:  # not Linux
        return False


def spin_status():
    """How fastopt's idle workers wait, in words (for ``show_config``)."""
    value = os.environ.get("GOMP_SPINCOUNT")
    policy = os.environ.get("OMP_WAIT_POLICY")
    if not _spin["set"]:
        return f"user's (GOMP_SPINCOUNT={value}, OMP_WAIT_POLICY={policy})"
    if _spin["libgomp_loaded_before"]:
        return (f"GOMP_SPINCOUNT={value} set, but libgomp was loaded before fastopt: its workers "
                "spin as that library was told")
    return f"spin {value} iterations, then sleep"


def adaptive_enabled(environ=None):
    environ = os.environ if environ is None else environ
    return environ.get("FASTOPT_ADAPTIVE", "1").strip() not in ("0", "false", "no", "off")


class Choice:
    """Serial or parallel for one kernel over one size, from the times of its recent calls.

    A *try* of a way is ``TRY`` calls in a row, the first not counted (it wakes the sleeping
    workers, or warms the caches), the best of the rest its time. The first calls try parallel,
    then serial; from then on the faster way runs, and the other is tried again after
    ``interval`` calls: the interval doubles (16 up to ``MAX_INTERVAL``) each time the try loses
    and starts again at 16 when it wins. A chosen way that takes over 1.5x its best recent time
    (another pool woke up) has the other tried at once. The other way must win by 10%."""

    __slots__ = ("calls", "parallel", "trying", "left", "tried", "recent", "best", "next_try", "interval")
    TRY = 3
    MIN_INTERVAL = 16
    MAX_INTERVAL = 1024
    MARGIN = 0.9
    SLOWDOWN = 1.5

    def __init__(self):
        self.calls = 0
        self.parallel = None  # not chosen yet
        self.trying, self.left, self.tried = True, self.TRY, []  # the first try: parallel
        self.recent = []  # the chosen way's latest times, ns
        self.best = None
        self.next_try = 0
        self.interval = self.MIN_INTERVAL

    def pick(self):
        """Whether the next call runs parallel."""
        if self.left:
            return self.trying
        if self.calls >= self.next_try:  # start a try of the other way
            self.trying, self.left, self.tried = not self.parallel, self.TRY, []
            return self.trying
        return self.parallel

    def record(self, parallel, ns):
        """The time of a call that ran ``parallel`` (as :meth:`pick` said)."""
        self.calls += 1
        if self.left:
            self.left -= 1
            if self.left < self.TRY - 1:
                self.tried.append(ns)
            if self.left:
                return
            t = min(self.tried)
            if self.parallel is None:  # the first try was parallel: now try serial
                self.parallel, self.recent, self.best = True, [t], t
                self.trying, self.left, self.tried = False, self.TRY, []
                return
            mine = min(self.recent) if self.recent else math.inf
            if t < self.MARGIN * mine:
                self.parallel, self.recent, self.best = parallel, [t], t
                self.interval = self.MIN_INTERVAL
            else:
                self.interval = min(2 * self.interval, self.MAX_INTERVAL)
            self.next_try = self.calls + self.interval
            return
        recent = self.recent
        recent.append(ns)
        if len(recent) > 4:
            del recent[0]
        if self.best is None or ns < self.best:
            self.best = ns
        elif min(recent[-2:]) > self.SLOWDOWN * self.best and len(recent) >= 2:
            self.best = min(recent[-2:])  # the new normal, unless the try shows otherwise
            self.recent = recent[-2:]
            self.next_try = self.calls


def adaptive(serial, parallel, choices, chunked=True):
    """A kernel callable that runs ``parallel`` or ``serial`` with the same arguments (the last,
    the chunk count, 1 for ``serial`` when ``chunked``), as the :class:`Choice` for its first
    argument's size says. ``choices`` maps size -> Choice."""
    clock = time.perf_counter_ns

    def call(*args):
        n = args[0].shape[0]
        choice = choices.get(n)
        if choice is None:
            choice = choices[n] = Choice()
        par = choice.pick()
        t = clock()
        if par:
            parallel(*args)
        elif chunked:
            serial(*args[:-1], 1)
        else:
            serial(*args)
        choice.record(par, clock() - t)
    call.choices = choices
    return call
