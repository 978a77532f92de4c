"""The numba backend: each kernel module's rendered source jitted, serial and parallel copies,
signatures read from the Cython annotations, the compiled entry point of the exact overload
returned (no per-call dispatch), flush-to-zero through LLVM's MXCSR intrinsics on x86-64."""
from __future__ import annotations

import importlib
import platform
from types import FunctionType

import numpy as np

from fastopt._kernels import _storage_template
from fastopt._backends.base import (kernel_source, _KERNEL_MODULE, Backend, BackendUnavailable, _concrete_annotations, _helpers,
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
        self._bits = None
        self._namespaces = {}

    def version(self):
        return self._numba.__version__

    def _module(self, modname, parallel, storages=()):
        key = (modname, parallel, storages)
        if key not in self._modules:
            numba = self._numba
            rebind = self._rebind()
            module = _load_source(modname, "par" if parallel else "ser", rebind, storages)
            kernels = {k for k, m in _KERNEL_MODULE.items() if m == modname} | {
                f"{modname}__{_storage_template.tag(s)}" for s in storages}
            # helpers first: Numba resolves them as globals when it compiles a kernel; one imported
            # from a helper module (_common, _lowp) is that module's jitted copy
            for attr, value in _helpers(module, kernels | set(rebind)):
                jitted = (self._jit_helper(value) if value.__globals__ is module.__dict__
                          else self._helper_namespace(value.__module__)[value.__name__])
                setattr(module, attr, jitted)
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

    def _rebind(self):
        """What Numba runs in place of names of the kernel sources: its prange, an unsigned index,
        the MXCSR and bit-cast intrinsics."""
        numba = self._numba
        if self._bits is None:
            self._bits = _bit_intrinsics()
        return {"prange": numba.prange, "uidx": numba.uintp, **self._csr_helpers(), **self._bits}

    def _jit_helper(self, func):
        """A helper jitted; one typed with concrete C types gets that signature, so arguments
        convert as in C."""
        numba = self._numba
        sig = [] if _concrete_annotations(func) is None else [numba_signature(func, np.float64, numba.types)]
        return numba.njit(*sig, error_model="numpy")(func)

    def _helper_namespace(self, modname):
        """Helper module ``modname``'s names with every function of its own jitted in them and the
        names of :meth:`_rebind` rebound, so that its helpers' calls to each other (and to the bit
        casts) resolve to jitted code; one namespace per module, shared by the kernel modules."""
        ns = self._namespaces.get(modname)
        if ns is None:
            source = importlib.import_module(modname)
            rebind = self._rebind()
            ns = {**vars(source), **rebind}
            for attr, func in _helpers(source, set(rebind)):
                if func.__module__ == modname:
                    copy = FunctionType(func.__code__, ns, attr, func.__defaults__, func.__closure__)
                    copy.__annotations__, copy.__qualname__ = func.__annotations__, func.__qualname__
                    ns[attr] = self._jit_helper(copy)
            self._namespaces[modname] = ns
        return ns

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
        modname, storages = kernel_source(name)
        dispatcher = getattr(self._module(modname, parallel, storages), name)
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


def _bit_intrinsics():
    """The bit casts and 32-bit word operations of ``_lowp`` for Numba, which has no scalar bit cast
    and widens integer arithmetic to 64 bits: LLVM bitcasts between float32 and a 32-bit integer
    (an argument converts as the C signature would), a truncation to 32 bits (``u32``), and a
    32-bit multiply and xor-shift (``mul32``, ``xorshr32``: the hash stays in 32-bit lanes)."""
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    def cast(source, result):
        def codegen(context, builder, signature, args):
            return builder.bitcast(context.cast(builder, args[0], signature.args[0], source), result)
        return codegen

    @intrinsic
    def f32_bits(typingctx, x):
        if isinstance(x, types.Float):
            return types.uint32(x), cast(types.float32, ir.IntType(32))

    @intrinsic
    def bits_f32(typingctx, u):
        if isinstance(u, types.Integer):
            return types.float32(u), cast(types.uint32, ir.FloatType())

    def on_words(op):
        """The codegen of ``op`` on the arguments as 32-bit words."""
        def codegen(context, builder, signature, args):
            return op(builder, *[context.cast(builder, v, t, types.uint32) for v, t in zip(args, signature.args)])
        return codegen

    integers = lambda *args: all(isinstance(a, types.Integer) for a in args)  # noqa: E731

    @intrinsic
    def u32(typingctx, v):
        if integers(v):
            return types.uint32(v), on_words(lambda builder, v: v)

    @intrinsic
    def mul32(typingctx, a, b):
        if integers(a, b):
            return types.uint32(a, b), on_words(lambda builder, a, b: builder.mul(a, b))

    @intrinsic
    def xorshr32(typingctx, x, k):
        if integers(x, k):
            return types.uint32(x, k), on_words(lambda builder, x, k: builder.xor(x, builder.lshr(x, k)))

    return {"f32_bits": f32_bits, "bits_f32": bits_f32, "u32": u32, "mul32": mul32, "xorshr32": xorshr32}


def numba_signature(func, dtype, types):
    """The Numba signature of a kernel, read from its Cython annotations."""
    f = types.float32 if dtype == np.float32 else types.float64
    table = {"cython.floating[::1]": f[::1], "cython.floating": f,
             "cython.const[cython.floating][::1]": types.Array(f, 1, "C", readonly=True),
             "cython.double[::1]": types.float64[::1], "cython.double": types.float64, "cython.float": types.float32,
             "cython.float[::1]": types.float32[::1],
             "cython.const[cython.float][::1]": types.Array(types.float32, 1, "C", readonly=True),
             "cython.ushort[::1]": types.uint16[::1], "cython.ushort": types.uint16,
             "cython.const[cython.ushort][::1]": types.Array(types.uint16, 1, "C", readonly=True),
             "cython.uint[::1]": types.uint32[::1], "cython.size_t": types.uintp,
             "cython.bint": types.boolean, "cython.int": types.intc, "cython.uint": types.uint32, "cython.Py_ssize_t": types.intp}
    ann = dict(func.__annotations__)
    ret = table.get(ann.pop("return", None), types.void)
    return ret(*[table[a] for a in ann.values()])
