"""Torch tensors as fastopt.torch steps them: the dtypes it views as NumPy arrays without a copy
(``_NUMPY_DTYPES``), a DTensor's local shard (``_local``), the check that a tensor can be viewed
in place (CPU, dense, float32/float64, contiguous: ``_check_tensor``), and the scalars handed to
fastopt (a tensor hyperparameter as a Python number, ``_number``; torch's float32 rounding of
scalar state, ``_round_float32``)."""
from __future__ import annotations

import numpy as np
import torch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _local(t):
    """The tensor fastopt steps: a DTensor's local shard (FSDP2's parameters and gradients), else
    ``t`` itself."""
    to_local = getattr(t, "to_local", None)
    return t if to_local is None else to_local()


def _check_tensor(t, where):
    t = _local(t)
    if t.device.type != "cpu":
        raise TypeError(f"{where} is on {t.device}: fastopt.torch updates CPU tensors in place; "
                        f"use torch.optim for {t.device.type} tensors")
    if t.layout != torch.strided:
        raise TypeError(f"{where} is {t.layout}: fastopt.torch needs dense tensors; use torch.optim")
    if t.dtype not in _NUMPY_DTYPES:
        raise TypeError(f"{where} has dtype {t.dtype}: fastopt supports torch.float32 and "
                        "torch.float64; use torch.optim for other dtypes")
    if not t.is_contiguous():
        raise ValueError(f"{where} is not contiguous: fastopt.torch updates it through a NumPy "
                         "view; make it contiguous (p.data = p.data.contiguous()) first")


def _round_float32(x):
    return float(np.float32(x))


def _number(value):
    """A hyperparameter as fastopt takes it: a 0-dim tensor (a tensor lr, as torch.optim accepts
    and schedulers write) becomes its Python number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value
