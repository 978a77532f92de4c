"""Flat mode (``flat=True`` or ``flatten_parameters(model)``): parameters and gradients moved into
views of one contiguous staggered buffer per dtype, so that the whole model steps in one kernel
call. Holds ``FlatParameters``, ``flatten_parameters``, the post-accumulate-grad hook that moves
a gradient autograd created elsewhere back into the buffer (``_return_to_buffer``), and the
test whether a parameter still lives in its buffer (``_in_buffer``)."""
from __future__ import annotations

import torch

from fastopt.flat import alloc_staggered
from fastopt.torch._tensors import _NUMPY_DTYPES, _check_tensor


class FlatParameters:
    """Parameters (and gradients) moved into one contiguous staggered buffer per dtype.

    Attributes:
        params: the parameters moved (those that require grad, in order).
        buffers: ``{dtype: (param_buffer, grad_buffer)}`` flat tensors.
    """

    def __init__(self, params):
        self.params = params
        self.buffers = {}

    def zero_grad(self, set_to_none=True):
        """As ``torch.optim.Optimizer.zero_grad`` for these parameters: ``set_to_none`` sets the
        gradients to None (the next backward writes into the buffer again), else every gradient
        buffer is zeroed with one fill."""
        if set_to_none:
            for p in self.params:
                p.grad = None
            return
        for _, grad_buffer in self.buffers.values():
            grad_buffer.zero_()
        for p in self.params:
            if p.grad is not None and p.grad is not p._fastopt_flat[2]:
                p.grad.detach_()
                p.grad.zero_()


def _in_buffer(p):
    """The flat-buffer views ``(param, grad, grad tensor)`` of ``p`` if ``p`` still lives there."""
    flat = getattr(p, "_fastopt_flat", None)
    if flat is None or flat[3] != p.data_ptr():
        return None
    return flat


def _return_to_buffer(p):
    """Post-accumulate hook of a flattened parameter: a gradient that autograd created outside the
    flat buffer (the parameter's ``.grad`` was None, as after ``zero_grad()``, or another tensor)
    is copied into the buffer and ``.grad`` becomes the buffer's view again; later backwards
    accumulate into the buffer in place. A parameter that gets no gradient keeps ``.grad`` None,
    so the optimizer skips it as torch does."""
    flat = _in_buffer(p)
    g = p.grad
    if flat is None or g is None or g is flat[2]:
        return
    if (g.layout == torch.strided and g.device.type == "cpu" and g.dtype == p.dtype
            and g.shape == p.shape):
        flat[1][...] = g.detach().numpy() if g.is_contiguous() else g.detach().contiguous().numpy()
        p.grad = flat[2]


def flatten_parameters(model_or_params):
    """Move the parameters that require grad into views of one staggered buffer per dtype.

    Each such parameter's ``.data`` becomes a view of the parameter buffer (values kept). Its
    gradient lives in a second buffer: an existing ``.grad`` is copied there, and whenever
    autograd gives the parameter a gradient (after ``zero_grad()`` set it to None) the gradient is
    moved there (a post-accumulate-grad hook), so the whole model steps in one kernel call. A
    gradient stays None until backward gives one, so the optimizer skips exactly what torch
    skips. Frozen parameters (``requires_grad=False``) stay where they are. Call it before
    building the optimizer (or pass ``flat=True`` to the optimizer).

    Args:
        model_or_params: an ``nn.Module`` or an iterable of parameters.

    Returns:
        A ``FlatParameters``.

    Example:
        >>> flat = fastopt.torch.flatten_parameters(model)
        >>> opt = fastopt.torch.AdamW(model.parameters(), lr=1e-3)
    """
    params = model_or_params.parameters() if isinstance(model_or_params, torch.nn.Module) else model_or_params
    unique, seen = [], set()
    for p in params:
        # DTensors (FSDP2) stay in their owner's sharded storage: stepped per local shard
        if id(p) not in seen and p.requires_grad and not hasattr(p, "to_local"):
            seen.add(id(p))
            unique.append(p)
    for k, p in enumerate(unique):
        _check_tensor(p, f"parameter {k}")
        if p.grad is not None:
            _check_tensor(p.grad, f"gradient of parameter {k}")
    flat = FlatParameters(unique)
    for dtype in dict.fromkeys(p.dtype for p in unique):
        members = [p for p in unique if p.dtype == dtype]
        total = sum(p.numel() for p in members)
        pbuf = alloc_staggered(total, _NUMPY_DTYPES[dtype], fill=None)
        gbuf = alloc_staggered(total, _NUMPY_DTYPES[dtype], fill=0.0)
        offset = 0
        with torch.no_grad():
            for p in members:
                n = p.numel()
                pview = pbuf[offset:offset + n].reshape(p.shape)
                gview = gbuf[offset:offset + n].reshape(p.shape)
                pview[...] = p.detach().numpy()
                grad = torch.from_numpy(gview)
                if p.grad is not None:
                    gview[...] = p.grad.detach().numpy()
                p.data = torch.from_numpy(pview)
                p.grad = grad if p.grad is not None else None
                # the NumPy views of the flat buffers: adjacent views merge into one kernel call
                p._fastopt_flat = (pview, gview, grad, pview.ctypes.data)
                if getattr(p, "_fastopt_hook", None) is None:  # one hook, whatever buffer p is in now
                    p._fastopt_hook = p.register_post_accumulate_grad_hook(_return_to_buffer)
                offset += n
        flat.buffers[dtype] = (torch.from_numpy(pbuf), torch.from_numpy(gbuf))
    return flat
