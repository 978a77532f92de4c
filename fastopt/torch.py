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
every parameter and its gradient into views of one contiguous staggered buffer per dtype: the
whole model steps in one kernel call, a fused global-norm clip needs one reduction, and autograd
accumulates straight into the flat gradient buffer. In flat mode ``zero_grad()`` zeroes that
buffer in place (``set_to_none`` is ignored, since the gradients must stay views of it).

Accepted and ignored: ``foreach``, ``fused`` (fastopt is always fused). Rejected:
``capturable=True``, ``differentiable=True``.
"""
from __future__ import annotations

import numpy as np
import torch

from fastopt import optimizers as _fo
from fastopt.flat import alloc_staggered

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "RAdam", "Rprop",
           "flatten_parameters", "FlatParameters"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _check_tensor(t, where):
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


# ---------------------------------------------------------------------------------- flat mode
class FlatParameters:
    """Parameters (and gradients) moved into one contiguous staggered buffer per dtype.

    Attributes:
        params: the parameters, in order.
        buffers: ``{dtype: (param_buffer, grad_buffer)}`` flat tensors.
    """

    def __init__(self, params):
        self.params = params
        self.buffers = {}

    def zero_grad(self):
        """Zero every gradient with one fill per buffer (the gradients stay views of it)."""
        for _, grad_buffer in self.buffers.values():
            grad_buffer.zero_()


def flatten_parameters(model_or_params):
    """Move parameters and their gradients into views of one staggered buffer per dtype.

    Each parameter's ``.data`` becomes a view of the parameter buffer (values kept) and its
    ``.grad`` a view of the gradient buffer (existing gradients kept, else zeros), so autograd
    accumulates into the buffer and a fastopt.torch optimizer steps the model in one kernel
    call. Call it before building the optimizer (or pass ``flat=True`` to the optimizer).

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
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    flat = FlatParameters(unique)
    for dtype in dict.fromkeys(p.dtype for p in unique):
        members = [p for p in unique if p.dtype == dtype]
        for k, p in enumerate(members):
            _check_tensor(p, f"parameter {k}")
        if dtype not in _NUMPY_DTYPES:
            continue
        total = sum(p.numel() for p in members)
        pbuf = alloc_staggered(total, _NUMPY_DTYPES[dtype], fill=None)
        gbuf = alloc_staggered(total, _NUMPY_DTYPES[dtype], fill=0.0)
        pflat, gflat = torch.from_numpy(pbuf), torch.from_numpy(gbuf)
        offset = 0
        with torch.no_grad():
            for p in members:
                n = p.numel()
                pview = pbuf[offset:offset + n].reshape(p.shape)
                gview = gbuf[offset:offset + n].reshape(p.shape)
                pview[...] = p.detach().numpy()
                if p.grad is not None:
                    gview[...] = p.grad.detach().numpy()
                p.data = torch.from_numpy(pview)
                p.grad = torch.from_numpy(gview)
                # the NumPy views of the flat buffers: adjacent views merge into one kernel call
                p._fastopt_flat = (pview, gview, p.grad)
                offset += n
        flat.buffers[dtype] = (pflat, gflat)
    return flat


# ---------------------------------------------------------------------------------- optimizers
class _TorchOptimizer(torch.optim.Optimizer):
    """A torch.optim.Optimizer whose step runs a fastopt optimizer over NumPy views."""

    #: the fastopt optimizer class and the hyperparameters it takes from each param group
    _fastopt = None
    _hyper = ()

    def __init__(self, params, defaults, *, switches, backend=None, flat=False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None):
        for name in ("capturable", "differentiable"):
            if switches.get(name):
                raise ValueError(f"{name}=True is not supported by fastopt.torch; use torch.optim")
        super().__init__(params, {**defaults, **switches})
        self._flat = flatten_parameters([p for g in self.param_groups for p in g["params"]]) if flat else None
        self._options = dict(backend=backend, clipnorm=clipnorm, clipvalue=clipvalue,
                             global_clipnorm=global_clipnorm)
        self._build()

    # -- the fastopt optimizer behind the torch API
    def _build(self):
        self._tensors = [p for g in self.param_groups for p in g["params"]]
        groups = [self._numpy_group(gi) for gi in range(len(self.param_groups))]
        self._inner = self._fastopt_class()(groups, **self._options)
        self._relink()

    def _numpy_group(self, gi):
        """Param group ``gi`` for the fastopt optimizer: NumPy views of its tensors (of the flat
        buffer where the tensor lives there, so adjacent ones merge) and its hyperparameters."""
        group = self.param_groups[gi]
        arrays = []
        for k, p in enumerate(group["params"]):
            _check_tensor(p, f"param_groups[{gi}]['params'][{k}]")
            flat = getattr(p, "_fastopt_flat", None)
            arrays.append(flat[0] if flat is not None and flat[0].ctypes.data == p.data_ptr()
                          else p.detach().numpy())
        return {"params": arrays, **{k: group[k] for k in self._hyper}}

    def _fastopt_class(self):
        return self._fastopt

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "_inner"):  # after construction: add it, keeping every other parameter's state
            gi = len(self.param_groups) - 1
            self._inner.add_param_group(self._numpy_group(gi))
            self._tensors.extend(self.param_groups[gi]["params"])
            self._relink()

    def _relink(self):
        """A step counter per parameter, and ``self.state`` pointed at views of it anew."""
        self._step_counts = np.zeros(len(self._tensors), np.float32)
        self._linked = set()
        self._link_state()

    def _link_state(self):
        """Point ``self.state[p]`` at tensor views of the fastopt state (as torch lays it out)."""
        inner = self._inner
        counts = self._step_counts
        counts[:] = inner._steps
        if len(self._linked) == len(self._tensors):
            return
        for i, (p, fp) in enumerate(zip(self._tensors, inner._params)):
            if i in self._linked:
                continue
            if inner._steps[i] == 0 and not inner._state_before_first_step():
                continue
            entry = {}
            if inner.counts_steps:
                entry["step"] = torch.from_numpy(counts[i:i + 1]).view(())
            for name in inner._exported_states(fp.group):
                entry[name] = torch.from_numpy(fp.states[name].reshape(fp.array.shape))
            self.state[p] = entry
            self._linked.add(i)

    def _sync_hyper(self):
        """Copy edits of torch's param groups (schedulers, users) into the fastopt groups."""
        for group, inner in zip(self.param_groups, self._inner.param_groups):
            for key in self._hyper:
                value = group[key]
                if isinstance(value, torch.Tensor):
                    value = value.item()
                if value != inner[key]:
                    inner[key] = value

    def _gradients(self):
        grads, keys = [], []
        for i, p in enumerate(self._tensors):
            g = p.grad
            if g is None:
                grads.append(None)
                keys.append(None)
                continue
            flat = getattr(p, "_fastopt_flat", None)
            if flat is not None:
                if g is not flat[2]:  # the gradient left the flat buffer (e.g. model.zero_grad())
                    _check_tensor(g, f"gradient of parameter {i}")
                    flat[1][...] = g.detach().numpy()
                    p.grad = flat[2]
                grads.append(flat[1])
                keys.append(flat[1])
                continue
            if g.layout != torch.strided or g.device.type != "cpu" or g.dtype not in _NUMPY_DTYPES:
                _check_tensor(g, f"gradient of parameter {i}")
            if g.shape != p.shape:
                raise ValueError(f"gradient of parameter {i} has shape {tuple(g.shape)}, "
                                 f"the parameter {tuple(p.shape)}")
            if not g.is_contiguous():
                g = g.contiguous()
            grads.append(g.detach().numpy())
            keys.append(g)
        return grads, keys

    @torch.no_grad()
    def step(self, closure=None):
        """One fused step over every parameter with a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_hyper()
        grads, keys = self._gradients()
        self._inner._step(grads, keys)
        self._link_state()
        return loss

    def zero_grad(self, set_to_none=True):
        """As torch's, except that gradients living in a flat buffer are zeroed in place (and
        stay there, whatever ``set_to_none`` says)."""
        if self._flat is not None:
            self._flat.zero_grad()
            return
        if not any(getattr(p, "_fastopt_flat", None) is not None for p in self._tensors):
            return super().zero_grad(set_to_none=set_to_none)
        for p in self._tensors:
            flat = getattr(p, "_fastopt_flat", None)
            if flat is not None and p.grad is flat[2]:
                flat[1].fill(0)
            elif p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    # -- state_dict: torch's format, validated by fastopt before anything changes
    def state_dict(self):
        self._step_counts[:] = self._inner._steps
        return super().state_dict()

    def load_state_dict(self, state_dict):
        """Load a state_dict of this class or of the same ``torch.optim`` optimizer."""
        converted = {"param_groups": [], "state": {}}
        for group in state_dict["param_groups"]:
            converted["param_groups"].append({k: (v.item() if isinstance(v, torch.Tensor) and k != "params" else v)
                                              for k, v in group.items() if k in self._hyper or k == "params"})
        for key, entry in state_dict["state"].items():
            converted["state"][key] = {
                name: (int(value.item()) if name == "step" else value.detach().cpu().numpy())
                if isinstance(value, torch.Tensor) else value
                for name, value in entry.items()}
        self._inner.load_state_dict(converted)  # validates everything first
        super().load_state_dict(state_dict)
        self._relink()


def _switches(**kwargs):
    return kwargs


class SGD(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.SGD`` on fastopt kernels.\n\n" + (_fo.SGD.__doc__ or "")
    _fastopt = _fo.SGD
    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, **options):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach, differentiable=differentiable,
                                                              fused=fused), **options)


class Adam(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adam`` on fastopt kernels.\n\n" + (_fo.Adam.__doc__ or "")
    _fastopt = _fo.Adam
    _hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused), **options)

    def _fastopt_class(self):
        decoupled = self.defaults.get("decoupled_weight_decay", False)
        return _fo.AdamW if decoupled else _fo.Adam


class AdamW(Adam):
    __doc__ = "Drop-in ``torch.optim.AdamW`` on fastopt kernels.\n\n" + (_fo.AdamW.__doc__ or "")
    _fastopt = _fo.AdamW

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None, **options):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True, **options)


class RMSprop(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.RMSprop`` on fastopt kernels.\n\n" + (_fo.RMSprop.__doc__ or "")
    _fastopt = _fo.RMSprop
    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            capturable=capturable, foreach=foreach, differentiable=differentiable), **options)


class Adagrad(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adagrad`` on fastopt kernels.\n\n" + (_fo.Adagrad.__doc__ or "")
    _fastopt = _fo.Adagrad
    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None, **options):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach, differentiable=differentiable,
                                                              fused=fused), **options)


class Adadelta(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adadelta`` on fastopt kernels.\n\n" + (_fo.Adadelta.__doc__ or "")
    _fastopt = _fo.Adadelta
    _hyper = ("lr", "rho", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Adamax(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adamax`` on fastopt kernels.\n\n" + (_fo.Adamax.__doc__ or "")
    _fastopt = _fo.Adamax
    _hyper = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class RAdam(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.RAdam`` on fastopt kernels.\n\n" + (_fo.RAdam.__doc__ or "")
    _fastopt = _fo.RAdam
    _hyper = ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Rprop(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Rprop`` on fastopt kernels.\n\n" + (_fo.Rprop.__doc__ or "")
    _fastopt = _fo.Rprop
    _hyper = ("lr", "etas", "step_sizes", "maximize")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)
