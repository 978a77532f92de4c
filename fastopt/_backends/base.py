"""What every backend shares: the kernel table (kernel name -> module), the loading of a kernel
module's rendered source (``_template.render``) as a fresh module, the ``Backend`` interface
(kernels resolved once per name, dtype and serial/parallel, the adaptive serial/parallel choice
wrapped around parallel ones), and the state the backends read: the active backend and the
kernel threads (``default_threads``)."""
from __future__ import annotations

import hashlib
import os
import sys
import types

import numpy as np

from fastopt import _threads
from fastopt._kernels import MODULES, _template

_KERNEL_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_kernels")
#: kernel name -> module; an elementwise rule's kernel is named after its module
_KERNEL_MODULE = {"norm_partials": "reduce", "scale_clamp_": "reduce", "stream": "stream",
                  "accumulate": "accumulate", "convert_": "convert",
                  # per-array family: multi-pass kernels, several per module
                  "lamb_norms": "lamb", "lamb_update": "lamb", "lars_norms": "lars", "lars_update": "lars",
                  **{k: "adafactor" for k in ("adafactor_vec_norms", "adafactor_vec_update", "adafactor_mat_stats",
                                              "adafactor_mat_norm", "adafactor_mat_update")},
                  **{m: m for m in MODULES if _template.is_elementwise(m)}}


#: kernels whose last argument is their chunk count (1 for the serial build); the others (the
#: per-array rules' and the norm's) take the same arguments serial or parallel
_CHUNKED = frozenset(k for k, m in _KERNEL_MODULE.items()
                     if m not in ("lamb", "lars", "adafactor") and k != "norm_partials")


class BackendUnavailable(ImportError):
    """The requested backend cannot be imported here."""


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: environment variables by which launchers give the number of processes on this node
_LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE")


def default_threads(environ=None):
    """Kernel threads when the user sets none: ``FASTOPT_NUM_THREADS`` if set, else the cores this
    process may use (its affinity mask) shared among the processes of a launcher on this node
    (torchrun's ``LOCAL_WORLD_SIZE``, Open MPI's, MPICH's), so that the ranks of a ``torchrun
    --nproc-per-node=k`` job do not oversubscribe the cores. torchrun's ``OMP_NUM_THREADS=1`` is
    not followed: it is meant for the ranks' intra-op pools, and would leave the optimizer step
    single-threaded. A mask smaller than the machine means the launcher pinned this rank already,
    and is used whole."""
    environ = os.environ if environ is None else environ
    value = environ.get("FASTOPT_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"FASTOPT_NUM_THREADS must be a positive integer, got {value!r}")
        return int(value)
    cores = _cpu_count()
    if cores < (os.cpu_count() or cores):
        return cores
    for name in _LOCAL_SIZE_VARS:
        local = environ.get(name, "").strip()
        if local.isdigit() and int(local) >= 1:
            return max(1, cores // int(local))
    return cores


_state = {"threads": default_threads(), "backend": None}

#: the helper modules the kernels import (their digest names a loaded module: Numba's cache does
#: not see a helper's edits)
_HELPER_SOURCES = ("_common.py", "_lowp.py")


def kernel_source(name):
    """``(module, storages)`` of kernel ``name``: a storage variant ``<rule>__<tag>``
    (``_storage_template``) lives in its rule's module rendered with that one variant."""
    if "__" in name:
        from fastopt._kernels import _storage_template
        rule, storage = _storage_template.parse(name)
        if rule not in MODULES or not _template.is_elementwise(rule):
            raise ValueError(f"{name}: storage variants are for the elementwise rules")
        return rule, (storage,)
    return _KERNEL_MODULE[name], ()


def _load_source(modname, variant, rebind, storages=()):
    """Execute the source of kernel module ``modname`` (``_template.render``: an elementwise rule
    expanded into its kernel, with the ``storages`` variants) as a fresh module, and rebind names
    in it."""
    path = os.path.join(_KERNEL_DIR, modname + ".py")
    text = _template.render(modname, storages=storages)
    digest = hashlib.sha1(text.encode())
    for helpers in _HELPER_SOURCES:
        with open(os.path.join(_KERNEL_DIR, helpers), "rb") as f:
            digest.update(f.read())
    digest = digest.hexdigest()[:10]
    name = f"fastopt._kernels.{modname}_{variant}_{digest}"
    module = types.ModuleType(name)
    module.__file__ = path  # Numba's cache keys on the file: the rule module, whose edits it sees
    sys.modules[name] = module  # Numba's cache re-imports a kernel's module by name
    try:
        import cython  # noqa: F401
        shim = None
    except ImportError:  # a runtime without Cython: the pure-mode decorators are no-ops
        from fastopt._kernels import _cython_shim as shim
        saved = sys.modules.get("cython")
        sys.modules["cython"] = shim
    try:
        exec(compile(text, path, "exec"), module.__dict__)
    finally:
        if shim is not None:
            if saved is None:
                del sys.modules["cython"]
            else:
                sys.modules["cython"] = saved
    for attr, value in rebind.items():
        setattr(module, attr, value)
    module.__fastopt_tag__ = f"{variant}_{digest}"
    return module


class Backend:
    name = "?"

    def __init__(self):
        self._cache = {}

    def kernel(self, name, dtype, parallel):
        """The callable for kernel ``name`` on arrays of ``dtype``; serial or parallel. A parallel
        kernel that takes its chunk count last runs serially when that measures faster
        (``_threads.adaptive``)."""
        key = (name, np.dtype(dtype).char, bool(parallel))
        fn = self._cache.get(key)
        if fn is None:
            fn = self._build(name, np.dtype(dtype), bool(parallel))
            if parallel and _threads.adaptive_enabled():
                fn = _threads.adaptive(self.kernel(name, dtype, False), fn, {}, name in _CHUNKED)
            self._cache[key] = fn
        return fn

    def _build(self, name, dtype, parallel):  # pragma: no cover - abstract
        raise NotImplementedError

    def version(self):
        return ""


def _helpers(module, kernels):
    """The plain functions of a loaded kernel module other than its kernels."""
    return [(attr, value) for attr, value in vars(module).items()
            if getattr(value, "__code__", None) is not None and attr not in kernels]


def _concrete_annotations(func):
    """A helper's annotations if every one names a concrete C type (no fused type), else None."""
    ann = getattr(func, "__annotations__", {})
    if not ann or any("floating" in a for a in ann.values()):
        return None
    return ann
