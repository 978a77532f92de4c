"""fastopt.torch: drop-in ``torch.optim`` optimizers backed by fastopt's fused kernels.

``fastopt.torch.Adam(model.parameters(), lr=1e-3)`` is a ``torch.optim.Optimizer`` with torch's
signature and defaults, so param groups, ``zero_grad``, ``torch.optim.lr_scheduler``,
``torch.nn.utils.clip_grad_norm_``, ``torch.amp.GradScaler("cpu")``, step hooks and
``state_dict()`` (torch's format: it loads into ``torch.optim.Adam`` and back) work unchanged.

Zero copy: CPU tensors are updated in place through NumPy views (``tensor.numpy()`` shares
memory); the optimizer state lives in fastopt's flat staggered buffers and ``opt.state[p]``
holds tensors viewing them. Tensors that cannot be viewed (CUDA or other devices, dtypes other
than float32/float64, sparse or non-contiguous tensors) raise a ``TypeError``/``ValueError`` at
construction saying so; use ``torch.optim`` for those.

Flat mode (``flat=True``, or ``flatten_parameters(model)`` before building the optimizer) moves
every parameter that requires grad, and its gradient, into views of one contiguous staggered
buffer per dtype: the whole model steps in one kernel call and a fused global-norm clip needs one
reduction. Gradients keep torch's meaning: ``zero_grad()`` sets them to None, a backward that
reaches a parameter puts its gradient in the buffer (autograd accumulates in place there from the
second backward on), and a parameter without a gradient (frozen, not reached, before the first
backward) is skipped with its state untouched, as torch skips it.

Across processes: DDP replicas, ``ZeroRedundancyOptimizer(optimizer_class=fastopt.torch.AdamW)``
(state written into ``opt.state`` from outside and parameters rebound into buckets are followed
before each step), FSDP2's DTensors (stepped through their local shards; the fused
``global_clipnorm`` all-reduces its norm over the mesh) and DeepSpeed's ZeRO with a client
optimizer (its flat fp32 partitions replace the groups' parameters; followed too).

Accepted and ignored: ``foreach``, ``fused`` (fastopt is always fused). Rejected:
``capturable=True``, ``differentiable=True``.
"""
# The package: _adapter (the torch.optim.Optimizer base over NumPy views; opt.state and
# state_dict in torch's layout), _torch_optim (the drop-ins for torch.optim's optimizers),
# _beyond_torch (the optimizers torch.optim lacks), _flat_mode (flat=True, flatten_parameters),
# _tensors (dtypes, view checks, DTensor local shards, scalars), _distributed (sharded DTensors,
# the all-reduced clip norm).
from __future__ import annotations

# the modules and underscored helpers below (noqa: F401) are imported only so that every name the
# single module fastopt/torch.py had stays reachable as fastopt.torch.<name>
import collections  # noqa: F401
import numpy as np  # noqa: F401
import torch  # noqa: F401

from fastopt import optimizers as _fo  # noqa: F401
from fastopt.flat import alloc_staggered  # noqa: F401
from fastopt.torch._adapter import _State, _switches, _TorchOptimizer  # noqa: F401
from fastopt.torch._beyond_torch import (LARS, AdaBelief, Adan, AdamWScheduleFree, Ftrl, Lamb, Lion, ScheduleFreeAdamW,
                                         ScheduleFreeSGD, SGDScheduleFree, Yogi)
from fastopt.torch._beyond_torch import _ScheduleFree  # noqa: F401
from fastopt.torch._distributed import _all_reduce_sums, _sharded_dims  # noqa: F401
from fastopt.torch._flat_mode import FlatParameters, flatten_parameters
from fastopt.torch._flat_mode import _in_buffer, _return_to_buffer  # noqa: F401
from fastopt.torch._tensors import _NUMPY_DTYPES, _check_tensor, _local, _number, _round_float32  # noqa: F401
from fastopt.torch._torch_optim import (ASGD, SGD, Adadelta, Adafactor, Adagrad, Adam, Adamax, AdamW, Muon, NAdam,
                                        RAdam, RMSprop, Rprop)

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "RAdam", "Rprop", "NAdam", "ASGD",
           "Adafactor", "Muon", "Lion", "Lamb", "LARS", "Ftrl", "Yogi", "AdaBelief", "Adan", "ScheduleFreeAdamW",
           "ScheduleFreeSGD", "AdamWScheduleFree", "SGDScheduleFree", "flatten_parameters", "FlatParameters"]
