"""The base of every fastopt.torch optimizer: ``_TorchOptimizer``, a ``torch.optim.Optimizer``
whose param groups are handed to a fastopt optimizer as NumPy views of the tensors (no copies),
whose ``step`` syncs the groups' hyperparameters, takes in what others changed (state assigned
from outside, parameters rebound or replaced by ZeRO/DeepSpeed) and runs one fused step, and
whose ``opt.state`` (``_State``) and ``state_dict``/``load_state_dict`` show and take fastopt's
state in torch's layout. ``_switches`` collects the torch flags a subclass's signature accepts."""
from __future__ import annotations

import collections

import numpy as np
import torch

from fastopt.torch._distributed import _all_reduce_sums, _sharded_dims
from fastopt.torch._flat_mode import _in_buffer, flatten_parameters
from fastopt.torch._tensors import _NUMPY_DTYPES, _check_tensor, _local, _number, _round_float32


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


def _switches(**kwargs):
    return kwargs
