"""fastopt's thread pool as threadpoolctl sees it: ``threadpool_limits(1)`` limits it too,
``threadpool_info()`` lists it (``user_api="fastopt"``). Registered when fastopt is imported."""
from __future__ import annotations

from fastopt import _backends
from fastopt._version import __version__


def register():
    """Make fastopt's pool visible to threadpoolctl, if it is installed: a controller matched to
    the shared library that holds the pool (the Cython build's ``fastopt_threads`` module, else
    Numba's threading-layer library) that reads and sets ``fastopt.set_num_threads``."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    try:  # the Cython build's module: loaded now, so threadpoolctl finds it from the start
        import fastopt._cy.fastopt_threads  # noqa: F401
        prefixes = ("fastopt_threads",)
    except ImportError:  # Numba only: its threading layer's library, once it has started
        prefixes = ("omppool", "workqueue", "tbbpool")

    class FastoptController(threadpoolctl.LibController):
        user_api = "fastopt"
        internal_api = "fastopt"
        filename_prefixes = prefixes

        def get_num_threads(self):
            return _backends.get_num_threads()

        def set_num_threads(self, num_threads):
            _backends.set_num_threads(max(1, int(num_threads)))

        def get_version(self):
            return __version__

        def set_additional_attributes(self):
            self.backend = _backends.get_backend()
            self.parallel_threshold = _backends.PARALLEL_THRESHOLD

    threadpoolctl.register(FastoptController)
    return True

