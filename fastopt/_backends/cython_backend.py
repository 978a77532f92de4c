"""The cython backend: the extension modules ``fastopt._cy.<name>`` that setup.py compiles from
the same rendered sources; OpenMP threads set per call, the serial entries (no OpenMP region)
below the threshold, the GIL released in every kernel."""
from __future__ import annotations

import importlib

import numpy as np

from fastopt._backends.base import _KERNEL_MODULE, Backend, BackendUnavailable, _state
from fastopt._kernels import MODULES


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
        if name not in _KERNEL_MODULE:  # a storage variant (``_storage_template``): not compiled yet
            raise BackendUnavailable(f"kernel {name} is not in the Cython build; the numba and python backends "
                                     "render storage variants on demand")
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
