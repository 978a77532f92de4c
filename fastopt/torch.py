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
from __future__ import annotations

import collections

import numpy as np
import torch

from fastopt import optimizers as _fo
from fastopt.flat import alloc_staggered

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "RAdam", "Rprop", "NAdam", "ASGD",
           "Adafactor", "Muon", "Lion", "Lamb", "LARS", "Ftrl", "Yogi", "AdaBelief", "Adan", "ScheduleFreeAdamW",
           "ScheduleFreeSGD", "AdamWScheduleFree", "SGDScheduleFree", "flatten_parameters", "FlatParameters"]

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def _local(t):
    """The tensor fastopt steps: a DTensor's local shard (FSDP2's parameters and gradients), else
    ``t`` itself."""
    to_local = getattr(t, "to_local", None)
    return t if to_local is None else to_local()


def _sharded_dims(tensors):
    """``(mesh, dims)`` of the first DTensor among ``tensors`` sharded over some mesh dimensions
    (their sums of squares must be all-reduced over those), or None."""
    for t in tensors:
        placements = getattr(t, "placements", None)
        if placements is not None:
            dims = [i for i, pl in enumerate(placements) if pl.is_shard()]
            if dims:
                return t.device_mesh, dims
    return None


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


# ---------------------------------------------------------------------------------- flat mode
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


# ---------------------------------------------------------------------------------- optimizers
class _State(collections.defaultdict):
    """``opt.state``: torch's defaultdict, noting when an entry is assigned from outside
    (``ZeroRedundancyOptimizer.load_state_dict`` writes ``optim.state[p] = copies``), so that the
    next step loads such entries into fastopt's buffers before it runs."""

    def __init__(self, items=()):
        super().__init__(dict, items)
        self.assigned = False

    def __missing__(self, key):  # a read of a missing entry assigns nothing
        value = {}
        dict.__setitem__(self, key, value)
        return value

    def __setitem__(self, key, value):
        self.assigned = True
        super().__setitem__(key, value)


class _TorchOptimizer(torch.optim.Optimizer):
    """A torch.optim.Optimizer whose step runs a fastopt optimizer over NumPy views."""

    #: the fastopt optimizer class and the hyperparameters it takes from each param group
    _fastopt = None
    _hyper = ()
    #: torch-side group keys that the fastopt class spells differently (schedulefree's momentum: b1)
    _renamed = {}
    #: the dtype of scalar state (None: torch's scalar dtype, the default dtype, as torch.optim keeps it)
    _scalar_dtype = None

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
        if self._scalar_dtype is None and torch.get_default_dtype() == torch.float32:
            self._inner._scalar_round = _round_float32  # torch's scalar state is float32
        self._record_views()
        sharded = _sharded_dims(self._tensors)
        if sharded is not None:  # the fused clip's norm (and finite check) is the whole model's
            self._inner._reduce_sums = _all_reduce_sums(*sharded)
        self._relink()

    def _record_views(self):
        """Per tensor, what the step checks: the address fastopt views, its flat-buffer views
        (or None) and whether it is a DTensor (stepped through its local shard)."""
        self._views = [(_local(p).data_ptr(), _in_buffer(p), hasattr(p, "to_local")) for p in self._tensors]
        self._group_lists = [(g["params"], len(g["params"])) for g in self.param_groups]

    def _params_replaced(self):
        """Whether a group's ``params`` list was replaced or resized since the optimizer last saw
        it (DeepSpeed's ZeRO swaps each group's parameters for one flat fp32 partition)."""
        lists = self._group_lists
        return len(lists) != len(self.param_groups) or any(
            g["params"] is not seen or len(seen) != n for g, (seen, n) in zip(self.param_groups, lists))

    def _adopt_new_params(self):
        """Build the fastopt optimizer over the parameters the groups list now; their state is
        carried over by position when they match the old ones in number, shape and dtype, else
        they start without state (as torch.optim's, keyed by the new tensors, would)."""
        old = self._tensors
        new = [p for g in self.param_groups for p in g["params"]]
        same = len(old) == len(new) and all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(old, new))
        carried = self._inner.state_dict() if same else None
        self.state = _State()
        self._build()
        if carried is not None:
            self._inner.load_state_dict(carried)
            self._relink()

    def _take_outside_changes(self):
        """What others changed since the last step, taken in before it runs: state entries
        assigned from outside (``ZeroRedundancyOptimizer.load_state_dict``) are loaded into
        fastopt's buffers; parameters whose ``.data`` was rebound to other memory
        (``ZeroRedundancyOptimizer(..., parameters_as_bucket_view=True)`` moves them into its
        buckets) are viewed anew, their state kept; parameter lists replaced in the groups
        (DeepSpeed) are taken as the parameters from now on."""
        if self._params_replaced():
            self._adopt_new_params()
        if type(self.state) is not _State or self.state.assigned:
            self.load_state_dict(self.state_dict())
        grads = self._gradients()
        if grads is None:  # a parameter moved
            saved = self.state_dict()
            self._build()
            self.load_state_dict(saved)
            grads = self._gradients()
        return grads

    def _numpy_group(self, gi):
        """Param group ``gi`` for the fastopt optimizer: NumPy views of its tensors (of the flat
        buffer where the tensor lives there, so adjacent ones merge) and its hyperparameters."""
        group = self.param_groups[gi]
        arrays = []
        for k, p in enumerate(group["params"]):
            _check_tensor(p, f"param_groups[{gi}]['params'][{k}]")
            flat = _in_buffer(p)
            arrays.append(flat[0] if flat is not None else _local(p).detach().numpy())
        return {"params": arrays, **{self._renamed.get(k, k): _number(group[k]) for k in self._hyper}}

    def _fastopt_class(self):
        return self._fastopt

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if hasattr(self, "_inner"):  # after construction: add it, keeping every other parameter's state
            gi = len(self.param_groups) - 1
            self._inner.add_param_group(self._numpy_group(gi))
            self._tensors.extend(self.param_groups[gi]["params"])
            self._record_views()
            self._relink()

    def _relink(self):
        """A step counter per parameter, and ``self.state`` pointed at views of it anew. Counters
        and scalar state (NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) are 0-dim tensors of
        torch's scalar dtype (the default dtype), as torch keeps them."""
        dtype = _NUMPY_DTYPES.get(torch.get_default_dtype(), np.float32)
        self._step_counts = np.zeros(len(self._tensors), dtype)
        self._scalar_values = {name: np.zeros(len(self._tensors), self._scalar_dtype or dtype)
                               for name in self._inner.scalar_state_names}
        self._linked = set()
        if type(self.state) is not _State:
            self.state = _State(self.state)
        self.state.assigned = False
        self._link_state()

    def _link_state(self):
        """Point ``self.state[p]`` at tensor views of the fastopt state (as torch lays it out)."""
        inner = self._inner
        counts = self._step_counts
        counts[:] = inner._steps
        values = self._scalar_values
        if values:  # they change with the step: refreshed after every step
            for i, fp in enumerate(inner._params):
                for name, value in inner._scalar_state_of(fp).items():
                    values[name][i] = value
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
            for name in (inner._scalar_state_of(fp) if values else ()):
                entry[name] = torch.from_numpy(values[name][i:i + 1]).view(())
            group = inner.param_groups[fp.group]
            for name in inner._exported_states(fp.group):
                shape = inner._state_shape(name, fp, group)
                if shape is not None:  # Adafactor: row_var/col_var for matrices, variance for vectors
                    entry[name] = torch.from_numpy(fp.states[name].reshape(shape))
            if entry:  # as torch: a parameter without state (SGD without momentum) has no entry
                dict.__setitem__(self.state, p, entry)
            self._linked.add(i)

    def _sync_hyper(self):
        """Copy edits of torch's param groups (schedulers, users) into the fastopt groups."""
        for group, inner in zip(self.param_groups, self._inner.param_groups):
            for key in self._hyper:
                value, key = _number(group[key]), self._renamed.get(key, key)
                if value != inner[key]:
                    inner[key] = value

    def _gradients(self):
        """``(grads, keys)`` for the fastopt step (NumPy views; None where a tensor has no
        gradient), or None when a parameter no longer lives where fastopt views it."""
        grads, keys = [], []
        for i, (p, (address, flat, dtensor)) in enumerate(zip(self._tensors, self._views)):
            if (_local(p) if dtensor else p).data_ptr() != address:
                return None
            g = p.grad
            if g is None:
                grads.append(None)
                keys.append(None)
                continue
            if flat is not None:
                if g is not flat[2]:  # a gradient assigned by hand, outside the flat buffer
                    _check_tensor(g, f"gradient of parameter {i}")
                    flat[1][...] = g.detach().numpy()
                    p.grad = flat[2]
                grads.append(flat[1])
                keys.append(flat[1])
                continue
            if dtensor:
                g = _local(g)
            if g.layout != torch.strided or g.device.type != "cpu" or g.dtype not in _NUMPY_DTYPES:
                _check_tensor(g, f"gradient of parameter {i}")
            shape = _local(p).shape if dtensor else p.shape
            if g.shape != shape:
                raise ValueError(f"gradient of parameter {i} has shape {tuple(g.shape)}, "
                                 f"the parameter {tuple(shape)}")
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
        grads, keys = self._take_outside_changes()
        self._inner._step(grads, keys)
        self._link_state()
        return loss

    # -- state_dict: torch's format, validated by fastopt before anything changes
    def state_dict(self):
        self._step_counts[:] = self._inner._steps
        return super().state_dict()

    def load_state_dict(self, state_dict):
        """Load a state_dict of this class or of the same ``torch.optim`` optimizer."""
        converted = {"param_groups": [], "state": {}}
        for group in state_dict["param_groups"]:
            converted["param_groups"].append({k: (v if k == "params" else _number(v))
                                              for k, v in group.items() if k in self._hyper or k == "params"})
            group = converted["param_groups"][-1]
            for k in [k for k in group if k in self._renamed]:
                group[self._renamed[k]] = group.pop(k)
        for key, entry in state_dict["state"].items():
            if isinstance(entry, dict) and not entry:
                continue  # an entry created by reading opt.state[p]: no state
            converted["state"][key] = {
                name: (int(value.item()) if name == "step" else value.detach().cpu().numpy())
                if isinstance(value, torch.Tensor) else value
                for name, value in entry.items()}
        self._inner.load_state_dict(converted)  # validates everything first
        super().load_state_dict(state_dict)
        self._relink()


def _all_reduce_sums(mesh, dims):
    """Sums of squares of local shards -> the sums over every shard (float64, one all-reduce per
    sharded mesh dimension)."""
    import torch.distributed as dist

    def reduce(sums):
        t = torch.tensor(sums, dtype=torch.float64)
        for d in dims:
            dist.all_reduce(t, group=mesh.get_group(d))
        return t.tolist()
    return reduce


def _round_float32(x):
    return float(np.float32(x))


def _number(value):
    """A hyperparameter as fastopt takes it: a 0-dim tensor (a tensor lr, as torch.optim accepts
    and schedulers write) becomes its Python number."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


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


# ---------------------------------------------------------------------------------- the rest of torch.optim
class NAdam(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.NAdam`` on fastopt kernels. State as torch's: ``step``, ``mu_product`` "
               "(0-dim tensors), ``exp_avg``, ``exp_avg_sq``.\n\n" + (_fo.NAdam.__doc__ or ""))
    _fastopt = _fo.NAdam
    _hyper = ("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class ASGD(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.ASGD`` on fastopt kernels. State as torch's: ``step``, ``eta``, ``mu`` "
               "(0-dim tensors), ``ax``.\n\n" + (_fo.ASGD.__doc__ or ""))
    _fastopt = _fo.ASGD
    _hyper = ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, **options):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Adafactor(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.Adafactor`` on fastopt kernels. State as torch's: ``step``, and "
               "``row_var``/``col_var`` (shapes ``(..., m, 1)``/``(..., 1, n)``) for tensors of 2 or more "
               "dimensions, ``variance`` for vectors and scalars.\n\n" + (_fo.Adafactor.__doc__ or ""))
    _fastopt = _fo.Adafactor
    _hyper = ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False, **options):
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Muon(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.Muon`` on fastopt (2-D parameters only, as torch). State as torch's: "
               "``momentum_buffer`` (no ``step``). The Newton-Schulz iterations run in the parameter's dtype, "
               "torch's in bfloat16 (see the warning below).\n\n" + (_fo.Muon.__doc__ or ""))
    _fastopt = _fo.Muon
    _hyper = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn")

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=_fo.muon.NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, **options):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults, switches={}, **options)


# ---------------------------------------------------------------------------------- beyond torch.optim
# torch.optim has none of these: the signatures follow fastopt's classes (the math's source: Keras,
# optax, the papers) with torch's names, Lion's default lr follows lion-pytorch, and the schedule-free
# pair takes the schedulefree package's argument order and its train()/eval(). State names are
# fastopt's (each class's docstring lists them).
class Lion(_TorchOptimizer):
    __doc__ = ("Lion on fastopt kernels; lion-pytorch's signature and default lr (1e-4) and the same update "
               "(decoupled decay first). State: ``step``, ``exp_avg``.\n\n" + (_fo.Lion.__doc__ or ""))
    _fastopt = _fo.Lion
    _hyper = ("lr", "betas", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False, foreach=None,
                 **options):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Lamb(_TorchOptimizer):
    __doc__ = ("LAMB on fastopt kernels (optax's/Keras's rule). State: ``step``, ``exp_avg``, "
               "``exp_avg_sq``.\n\n" + (_fo.Lamb.__doc__ or ""))
    _fastopt = _fo.Lamb
    _hyper = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, *, maximize=False,
                 foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class LARS(_TorchOptimizer):
    __doc__ = ("LARS on fastopt kernels (optax's rule). State: ``step``, ``momentum_buffer`` (with "
               "momentum).\n\n" + (_fo.LARS.__doc__ or ""))
    _fastopt = _fo.LARS
    _hyper = ("lr", "weight_decay", "trust_coefficient", "eps", "momentum", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, weight_decay=0.0, trust_coefficient=0.001, eps=0.0, momentum=0.9,
                 nesterov=False, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
                        momentum=momentum, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Ftrl(_TorchOptimizer):
    __doc__ = ("FTRL-proximal on fastopt kernels (Keras's rule and argument names). State: ``step``, "
               "``accumulator``, ``linear``.\n\n" + (_fo.Ftrl.__doc__ or ""))
    _fastopt = _fo.Ftrl
    _hyper = ("lr", "learning_rate_power", "initial_accumulator_value", "l1", "l2", "l2_shrinkage", "beta",
              "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, learning_rate_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0,
                 l2_shrinkage=0.0, beta=0.0, weight_decay=0.0, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, learning_rate_power=learning_rate_power,
                        initial_accumulator_value=initial_accumulator_value, l1=l1, l2=l2,
                        l2_shrinkage=l2_shrinkage, beta=beta, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Yogi(_TorchOptimizer):
    __doc__ = ("Yogi on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_sq``.\n\n"
               + (_fo.Yogi.__doc__ or ""))
    _fastopt = _fo.Yogi
    _hyper = ("lr", "betas", "eps", "eps_root", "initial_accumulator_value", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6,
                 *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class AdaBelief(_TorchOptimizer):
    __doc__ = ("AdaBelief on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_var``.\n\n"
               + (_fo.AdaBelief.__doc__ or ""))
    _fastopt = _fo.AdaBelief
    _hyper = ("lr", "betas", "eps", "eps_root", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, nesterov=False, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Adan(_TorchOptimizer):
    __doc__ = ("Adan on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_diff``, "
               "``exp_avg_sq``, ``pre_grad``.\n\n" + (_fo.Adan.__doc__ or ""))
    _fastopt = _fo.Adan
    _hyper = ("lr", "betas", "eps", "eps_root", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, eps_root=1e-8, weight_decay=0.0, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class _ScheduleFree(_TorchOptimizer):
    """``train()``/``eval()`` as the schedulefree package's optimizers: call ``eval()`` before
    evaluating (the parameters then hold x) and ``train()`` before training on (back to y)."""

    _scalar_dtype = np.float64  # max_lr and weight_sum: no torch convention; kept exactly

    def train(self):
        """Training mode: the parameters hold y (a no-op when already training)."""
        self._inner.train()

    def eval(self):
        """Evaluation mode: the parameters hold x; ``step()`` raises until ``train()``."""
        self._inner.eval()

    @property
    def training(self):
        return self._inner.training


class ScheduleFreeAdamW(_ScheduleFree):
    __doc__ = ("Schedule-free AdamW on fastopt kernels (optax's rule) with the schedulefree package's "
               "``AdamWScheduleFree`` argument order and ``train()``/``eval()``. State: ``step``, ``z``, ``x``, "
               "``exp_avg_sq``, ``max_lr``, ``weight_sum``.\n\n" + (_fo.ScheduleFreeAdamW.__doc__ or ""))
    _fastopt = _fo.ScheduleFreeAdamW
    _hyper = ("lr", "betas", "eps", "weight_decay", "warmup_steps", "weight_lr_power", "maximize")

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0,
                 weight_lr_power=2.0, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class ScheduleFreeSGD(_ScheduleFree):
    __doc__ = ("Schedule-free SGD on fastopt kernels (optax's rule) with the schedulefree package's "
               "``SGDScheduleFree`` arguments (``momentum`` is optax's ``b1``) and ``train()``/``eval()``. "
               "State: ``step``, ``z``, ``x``, ``max_lr``, ``weight_sum``.\n\n" + (_fo.ScheduleFreeSGD.__doc__ or ""))
    _fastopt = _fo.ScheduleFreeSGD
    _hyper = ("lr", "momentum", "weight_decay", "warmup_steps", "weight_lr_power", "maximize")
    _renamed = {"momentum": "b1"}

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, weight_lr_power=2.0, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


#: the schedulefree package's names
AdamWScheduleFree = ScheduleFreeAdamW
SGDScheduleFree = ScheduleFreeSGD
