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
"""
from __future__ import annotations

import hashlib
import importlib
import os
import platform
import sys
import types
import warnings

import numpy as np

from fastopt import _threads
from fastopt._kernels import MODULES, _template

# before any OpenMP runtime loads (Numba's threading layer and the Cython build load libgomp lazily)
_threads._spin["libgomp_loaded_before"] = _threads._libgomp_loaded()
_threads._spin["set"] = _threads.bound_spin()

BACKENDS = ("numba", "cython", "python")
PARALLEL_THRESHOLD = 65536
#: elements per partial of the norm reductions (fixed, so results do not depend on threads)
NORM_CHUNK = 32768
#: float64 lanes per chunk of the norm reductions (element i of a chunk adds to lane i % NORM_LANES)
NORM_LANES = 32

_KERNEL_DIR = os.path.join(os.path.dirname(__file__), "_kernels")
#: kernel name -> module; an elementwise rule's kernel is named after its module
_KERNEL_MODULE = {"norm_partials": "reduce", "scale_clamp_": "reduce", "stream": "stream",
                  "accumulate": "accumulate",
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


def _load_source(modname, variant, rebind):
    """Execute the source of kernel module ``modname`` (``_template.render``: an elementwise rule
    expanded into its kernel) as a fresh module, and rebind names in it."""
    path = os.path.join(_KERNEL_DIR, modname + ".py")
    text = _template.render(modname)
    with open(os.path.join(_KERNEL_DIR, "_common.py"), "rb") as f:
        digest = hashlib.sha1(text.encode() + f.read()).hexdigest()[:10]
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


_PY_COERCE = {"cython.double": float, "cython.int": int, "cython.Py_ssize_t": int, "cython.bint": bool}


def _coerced(func, dtype=None):
    """Wrap ``func`` so plain Python converts its arguments as its C signature would: C scalar
    types to Python's, ``cython.floating`` to ``dtype``'s scalar type; arrays pass as they are."""
    table = dict(_PY_COERCE, **({"cython.floating": dtype.type} if dtype is not None else {}))
    converters = [table.get(a) for k, a in func.__annotations__.items() if k != "return"]

    def wrapper(*args):
        return func(*[a if conv is None else conv(a) for conv, a in zip(converters, args)])
    return wrapper


class PythonBackend(Backend):
    name = "python"

    def __init__(self):
        super().__init__()
        self._modules = {}
        for modname in MODULES:
            module = _load_source(modname, "py", {})
            for attr, value in _helpers(module, set(_KERNEL_MODULE)):
                if _concrete_annotations(value) is not None:
                    setattr(module, attr, _coerced(value))
            self._modules[modname] = module

    def _build(self, name, dtype, parallel):
        # scalars typed `cython.floating` take the arrays' dtype, as the compiled signatures do
        fn = _coerced(getattr(self._modules[_KERNEL_MODULE[name]], name), dtype)

        def call(*args):
            with np.errstate(all="ignore"):  # as silent as the compiled kernels on inf/NaN
                fn(*args)
        return call


class NumbaBackend(Backend):
    name = "numba"

    def __init__(self):
        super().__init__()
        try:
            import numba
        except ImportError as exc:
            raise BackendUnavailable(
                "the numba backend needs Numba: pip install numba (or choose "
                "fastopt.set_backend('cython'))") from exc
        self._numba = numba
        self._modules = {}
        self._threads_launched = False
        self._csr = None

    def version(self):
        return self._numba.__version__

    def _module(self, modname, parallel):
        key = (modname, parallel)
        if key not in self._modules:
            numba = self._numba
            rebind = {"prange": numba.prange, "uidx": numba.uintp, **self._csr_helpers()}
            module = _load_source(modname, "par" if parallel else "ser", rebind)
            kernels = {k for k, m in _KERNEL_MODULE.items() if m == modname}
            # helpers first: Numba resolves them as globals when it compiles a kernel. A helper
            # typed with concrete C types gets that signature, so arguments convert as in C.
            for attr, value in _helpers(module, kernels | set(rebind)):
                ann = _concrete_annotations(value)
                sig = [] if ann is None else [numba_signature(value, np.float64, numba.types)]
                setattr(module, attr, numba.njit(*sig, error_model="numpy")(value))
            for attr in kernels:
                func = getattr(module, attr)
                # Numba's cache files are named after the source file and the qualname only: a
                # qualname per variant keeps the serial and parallel builds apart, and the digest
                # of the sources (helpers included, which Numba does not track) retires stale ones.
                func.__qualname__ = f"{attr}_{module.__fastopt_tag__}"
                setattr(module, attr, numba.njit(parallel=parallel, error_model="numpy", nogil=True,
                                                 cache=True)(func))
            self._modules[key] = module
        return self._modules[key]

    def _csr_helpers(self):
        """``denormals_flushed`` and ``restore_csr`` for Numba: LLVM's MXCSR intrinsics on x86-64
        (elsewhere the plain versions, which set nothing)."""
        if self._csr is None:
            from fastopt._kernels import _common
            numba = self._numba
            if platform.machine().lower() not in ("x86_64", "amd64"):
                self._csr = {"denormals_flushed": numba.njit(_common.denormals_flushed),
                             "restore_csr": numba.njit(_common.restore_csr)}
            else:
                get_csr, set_csr = _mxcsr_intrinsics()
                flag = np.uint32(_common.FTZ_DAZ)

                @numba.njit(inline="always")
                def denormals_flushed(ftz):
                    csr = np.uint32(0)
                    if ftz:
                        csr = get_csr()
                        set_csr(csr | flag)
                    return csr

                @numba.njit(inline="always")
                def restore_csr(ftz, csr):
                    if ftz:
                        set_csr(csr)
                self._csr = {"denormals_flushed": denormals_flushed, "restore_csr": restore_csr}
        return self._csr

    def _build(self, name, dtype, parallel):
        if parallel and not self._threads_launched:
            from numba.np.ufunc.parallel import _launch_threads
            _launch_threads()  # entry points skip the dispatcher, which would do this
            self._numba.set_num_threads(min(_state["threads"], self._numba.config.NUMBA_NUM_THREADS))
            self._threads_launched = True
        dispatcher = getattr(self._module(_KERNEL_MODULE[name], parallel), name)
        sig = numba_signature(dispatcher.py_func, dtype, self._numba.types)
        dispatcher.compile(sig)
        return dispatcher.overloads[sig.args].entry_point

    def set_num_threads(self, n):
        if self._threads_launched:
            self._numba.set_num_threads(min(n, self._numba.config.NUMBA_NUM_THREADS))


def _mxcsr_intrinsics():
    """Numba intrinsics reading and writing the calling thread's MXCSR (``stmxcsr``/``ldmxcsr``)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    i32, i8p = ir.IntType(32), ir.IntType(8).as_pointer()

    def x86(builder, name, slot):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
        builder.call(fn, [builder.bitcast(slot, i8p)])

    @intrinsic
    def get_csr(typingctx):
        def codegen(context, builder, signature, args):
            slot = cgutils.alloca_once(builder, i32)
            x86(builder, "llvm.x86.sse.stmxcsr", slot)
            return builder.load(slot)
        return types.uint32(), codegen

    @intrinsic
    def set_csr(typingctx, csr):
        def codegen(context, builder, signature, args):
            slot = cgutils.alloca_once(builder, i32)
            builder.store(args[0], slot)
            x86(builder, "llvm.x86.sse.ldmxcsr", slot)
            return context.get_dummy_value()
        return types.void(types.uint32), codegen

    return get_csr, set_csr


def numba_signature(func, dtype, types):
    """The Numba signature of a kernel, read from its Cython annotations."""
    f = types.float32 if dtype == np.float32 else types.float64
    table = {"cython.floating[::1]": f[::1], "cython.floating": f,
             "cython.const[cython.floating][::1]": types.Array(f, 1, "C", readonly=True),
             "cython.double[::1]": types.float64[::1], "cython.double": types.float64,
             "cython.bint": types.boolean, "cython.int": types.intc, "cython.uint": types.uint32, "cython.Py_ssize_t": types.intp}
    ann = dict(func.__annotations__)
    ret = table.get(ann.pop("return", None), types.void)
    return ret(*[table[a] for a in ann.values()])


class CythonBackend(Backend):
    name = "cython"

    def __init__(self):
        super().__init__()
        try:
            self._openmp = importlib.import_module("fastopt._cy.fastopt_threads")
            self._modules = {m: importlib.import_module(f"fastopt._cy.{m}") for m in MODULES}
        except ImportError as exc:
            raise BackendUnavailable(
                "the cython backend is not built: install fastopt from source with a C compiler "
                "and Cython (pip install --no-build-isolation -e . or pip install .); "
                "set FASTOPT_REQUIRE_CYTHON=1 to make a failed build an error") from exc

    def version(self):
        return getattr(self._modules["adam"], "__cython_version__", "") or _cython_version()

    def _build(self, name, dtype, parallel):
        module = self._modules[_KERNEL_MODULE[name]]
        spec = "float" if dtype == np.float32 else "double"
        # the _nogil entries (every kernel's; the serial ones where a kernel has a serial entry)
        # call it with the GIL released
        fn = getattr(module, name + "_nogil")[spec]
        set_threads = self._openmp.set_num_threads
        serial = getattr(module, name + "_serial_nogil", None)  # no OpenMP region

        if not parallel and serial is not None:
            return serial[spec]
        if not parallel:
            def call(*args):
                set_threads(1)  # a one-thread team: no wake-up of idle workers
                fn(*args)
        else:
            def call(*args):
                set_threads(_state["threads"])
                fn(*args)
        call.__name__ = f"{name}[{dtype.name}, {'parallel' if parallel else 'serial'}]"
        return call


def _cython_version():
    try:
        import Cython
        return Cython.__version__
    except ImportError:
        return "(compiled; Cython not installed)"


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
