"""``fastopt.show_config()``: versions, backends, threads and the CPU."""
from __future__ import annotations

import importlib
import os
import platform
import sys

import numpy as np

from fastopt import _backends, _threads


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16") if x in flags]
    except OSError:
        pass
    return []


def config():
    """The configuration as a dict (what ``show_config`` prints)."""
    from fastopt._version import __version__
    backends = {}
    for name in _backends.BACKENDS:
        try:
            be = _backends.backend(name)
            backends[name] = f"available {be.version()}".strip()
        except _backends.BackendUnavailable as exc:
            backends[name] = f"unavailable: {exc}"
    numba_threads = None
    try:
        numba = importlib.import_module("numba")
        numba_threads = f"{numba.config.NUMBA_NUM_THREADS} (layer: {numba.config.THREADING_LAYER})"
    except ImportError:
        pass
    return {
        "fastopt": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "active backend": _backends.get_backend(),
        **{f"backend {k}": v for k, v in backends.items()},
        "threads (fastopt)": _backends.get_num_threads(),
        "numba max threads": numba_threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "parallel threshold (elements)": _backends.PARALLEL_THRESHOLD,
        "idle OpenMP workers": _threads.spin_status(),
        "serial/parallel choice": ("measured per kernel and size" if _threads.adaptive_enabled()
                                   else "off (FASTOPT_ADAPTIVE=0): parallel above the threshold"),
        "cpu": _cpu_name(),
        "cpu cores available": _backends._cpu_count(),
        "cpu features": " ".join(_cpu_flags()),
    }


def show_config(file=None):
    """Print versions, which backends import, thread counts and the CPU."""
    for key, value in config().items():
        print(f"{key:>30}: {value}", file=file or sys.stdout)
