"""Backends built from the single kernel source, and the one place threads are controlled.

- ``numba`` (default): each kernel module's source is loaded as a private module copy,
  ``prange``/``uidx`` are rebound to Numba's, and its kernels are jitted with
  ``error_model="numpy"`` (Numba's default "python" model blocks vectorization) and
  explicit float32/float64 signatures derived from the Cython annotations. Two copies are
  built: ``parallel=True`` and serial. Callers get the compiled entry point of the exact
  overload, which skips Numba's per-call type dispatch (~1 us per call).
- ``cython``: the extension modules ``fastopt._cy.<name>`` built by setup.py; OpenMP
  threads are set per call. An elementwise rule's serial path is its ``<rule>_serial`` entry,
  which opens no OpenMP region (a one-thread team still costs ~1.3 us a call); the other
  kernels' serial path is a one-thread team.
- ``python``: the same source run as plain Python (slow; for debugging and coverage).

Kernels run serially below ``PARALLEL_THRESHOLD`` elements and on ``get_num_threads()``
chunks above it: below ~64K elements waking a thread costs more than it saves.

The package: ``base`` (the Backend interface, the kernel table, the loading of a kernel
module's rendered source, the shared state: active backend and threads), one module per
backend (``numba_backend``, ``cython_backend``, ``python_backend``), and here the choice of
backend and the thread count that every backend follows.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from fastopt import _threads

# before any OpenMP runtime loads (Numba's threading layer and the Cython build load libgomp lazily)
# before any OpenMP runtime loads (Numba's threading layer and the Cython build load libgomp lazily)
_threads._spin["libgomp_loaded_before"] = _threads._libgomp_loaded()
_threads._spin["set"] = _threads.bound_spin()

from fastopt._backends.base import (_CHUNKED, _KERNEL_MODULE, Backend, BackendUnavailable,  # noqa: E402,F401
                                    _cpu_count, _state, default_threads)
from fastopt._backends.cython_backend import CythonBackend  # noqa: E402
from fastopt._backends.numba_backend import NumbaBackend  # noqa: E402
from fastopt._backends.python_backend import PythonBackend  # noqa: E402

BACKENDS = ("numba", "cython", "python")
PARALLEL_THRESHOLD = 65536
#: elements per partial of the norm reductions (fixed, so results do not depend on threads)
NORM_CHUNK = 32768
#: float64 lanes per chunk of the norm reductions (element i of a chunk adds to lane i % NORM_LANES)
NORM_LANES = 32

_CLASSES = {"numba": NumbaBackend, "cython": CythonBackend, "python": PythonBackend}
_instances = {}


def backend(name=None):
    """The backend object called ``name`` (None: the active one), created on first use."""
    if name is None:
        name = _state["backend"] or _initial_backend()
    inst = _instances.get(name)
    if inst is None:
        if name not in _CLASSES:
            raise ValueError(f"backend: unknown backend {name!r}; choose one of {BACKENDS} or 'auto'")
        inst = _instances[name] = _CLASSES[name]()
    return inst


def _initial_backend():
    choice = os.environ.get("FASTOPT_BACKEND", "auto").strip().lower() or "auto"
    set_backend(choice)
    return _state["backend"]


def set_backend(name):
    """Choose the backend: 'numba', 'cython', 'python' or 'auto' (numba -> cython -> python).

    An explicit name that cannot be imported raises ``BackendUnavailable`` saying how to get
    it; 'auto' falls back with a warning.
    """
    name = str(name).lower()
    if name == "auto":
        errors = []
        for candidate in BACKENDS:
            try:
                backend(candidate)
            except BackendUnavailable as exc:
                errors.append(str(exc))
                continue
            if errors:
                warnings.warn(f"fastopt: using the {candidate} backend: " + "; ".join(errors),
                              RuntimeWarning, stacklevel=2)
            _state["backend"] = candidate
            return candidate
    backend(name)  # raises if unavailable or unknown
    _state["backend"] = name
    return name


def get_backend():
    """The name of the active backend."""
    return _state["backend"] or _initial_backend()


def available_backends():
    """Names of the backends that import here."""
    names = []
    for name in BACKENDS:
        try:
            backend(name)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def set_num_threads(n):
    """Threads used by kernels above the parallel threshold, on every backend."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    n = int(n)
    _state["threads"] = n
    numba_backend = _instances.get("numba")
    if numba_backend is not None:
        numba_backend.set_num_threads(n)


def get_num_threads():
    """Threads used by kernels above the parallel threshold."""
    return _state["threads"]


def chunks_for(n):
    """How many chunks a kernel over ``n`` elements runs in (1: the serial path)."""
    threads = _state["threads"]
    return threads if (threads > 1 and n >= PARALLEL_THRESHOLD) else 1
