"""fastopt: fused, in-place optimizer-update kernels over flat parameter buffers."""
from fastopt._backends import (BackendUnavailable, get_backend, get_num_threads, set_backend,
                               set_num_threads)

__version__ = "0.1.0"
