"""fastopt: fused, in-place optimizer-update kernels over flat parameter buffers.

Quick start::

    import numpy as np, fastopt
    flat, (w, b) = fastopt.flatten([np.zeros((784, 10), np.float32), np.zeros(10, np.float32)])
    gflat, (dw, db) = fastopt.flatten([np.zeros_like(w), np.zeros_like(b)])
    opt = fastopt.Adam([w, b], lr=1e-3, global_clipnorm=1.0)
    ...                       # write gradients into dw, db
    opt.step([dw, db])        # one fused kernel call for the whole model
"""
from fastopt._backends import (BackendUnavailable, available_backends, get_backend, get_num_threads,
                               set_backend, set_num_threads)
from fastopt._config import show_config
from fastopt.checkpoint import load, save
from fastopt.clip import clip_grad_norm_, clip_grad_value_, global_norm
from fastopt.flat import flatten
from fastopt.optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

# torch family
from fastopt.optimizers import ASGD, Adadelta, Adamax, NAdam, Nadam, RAdam, Rprop

# keras / optax family
from fastopt.optimizers import AdaBelief, Adan, Ftrl, Lion, ScheduleFreeAdamW, ScheduleFreeSGD, Yogi

# per-array family
from fastopt.optimizers import LARS, Adafactor, Lamb

# matrix family (2-D parameters)
from fastopt.optimizers import Muon
from fastopt.scaler import LossScaler
from fastopt._threadpoolctl import register as _register_threadpoolctl
from fastopt._version import __version__  # noqa: F401 (public)

_register_threadpoolctl()  # threadpool_limits(1) limits fastopt's pool too

__all__ = [
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Optimizer",
    "clip_grad_norm_", "clip_grad_value_", "global_norm", "flatten",
    "set_backend", "get_backend", "available_backends", "BackendUnavailable",
    "set_num_threads", "get_num_threads", "show_config", "save", "load", "LossScaler",
]
# torch family
__all__ += ["Adadelta", "Adamax", "NAdam", "Nadam", "RAdam", "Rprop", "ASGD"]
# keras / optax family
__all__ += ["Ftrl", "Lion", "Yogi", "AdaBelief", "Adan", "ScheduleFreeAdamW", "ScheduleFreeSGD"]
# per-array family
__all__ += ["Lamb", "LARS", "Adafactor"]
# matrix family (2-D parameters)
__all__ += ["Muon"]
