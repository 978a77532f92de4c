"""The python backend: the kernel sources run by the interpreter (slow; for debugging and
coverage), their arguments converted as the C signatures would convert them."""
from __future__ import annotations

import numpy as np

from fastopt._backends.base import (_KERNEL_MODULE, Backend, _concrete_annotations, _helpers, _load_source,
                                    kernel_source)
from fastopt._kernels import MODULES, _storage_template


_PY_COERCE = {"cython.double": float, "cython.float": np.float32, "cython.uint": int, "cython.size_t": int, "cython.int": int, "cython.Py_ssize_t": int, "cython.bint": bool}


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
            self._modules[modname] = self._load(modname)

    @staticmethod
    def _load(modname, storages=()):
        module = _load_source(modname, "py", {}, storages)
        kernels = set(_KERNEL_MODULE) | {f"{modname}__{_storage_template.tag(s)}" for s in storages}
        for attr, value in _helpers(module, kernels):
            if _concrete_annotations(value) is not None:
                setattr(module, attr, _coerced(value))
        return module

    def _build(self, name, dtype, parallel):
        modname, storages = kernel_source(name)
        if storages:  # a storage variant: its rule's module rendered with it
            module = self._modules.get((modname, storages))
            if module is None:
                module = self._modules[(modname, storages)] = self._load(modname, storages)
        else:
            module = self._modules[modname]
        # scalars typed `cython.floating` take the arrays' dtype, as the compiled signatures do
        fn = _coerced(getattr(module, name), dtype)

        def call(*args):
            with np.errstate(all="ignore"):  # as silent as the compiled kernels on inf/NaN
                fn(*args)
        return call
