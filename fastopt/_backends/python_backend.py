"""The python backend: the kernel sources run by the interpreter (slow; for debugging and
coverage), their arguments converted as the C signatures would convert them."""
from __future__ import annotations

import numpy as np

from fastopt._backends.base import _KERNEL_MODULE, Backend, _concrete_annotations, _helpers, _load_source
from fastopt._kernels import MODULES


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
