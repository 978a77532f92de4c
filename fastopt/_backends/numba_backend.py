"""The numba backend: each kernel module's rendered source jitted, serial and parallel copies,
signatures read from the Cython annotations, the compiled entry point of the exact overload
returned (no per-call dispatch), flush-to-zero through LLVM's MXCSR intrinsics on x86-64."""
from __future__ import annotations

import platform

import numpy as np

from fastopt._backends.base import (_KERNEL_MODULE, Backend, BackendUnavailable, _concrete_annotations, _helpers,
                                    _load_source, _state)


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
