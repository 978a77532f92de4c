"""``state_dict`` / ``load_state_dict`` in torch.optim's layout, everything checked before any change.

``state_dict()`` is ``{"state": {i: {...}}, "param_groups": [...], "fastopt": {...}}``: state
arrays copied and shaped like their parameters, ``step`` an int, schedules serialized, and the
counts torch has no place for (calls, skipped steps) under ``"fastopt"``. torch.optim's own
state_dicts load too (its implementation switches are ignored).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from fastopt._validate import step_count
from fastopt.optimizers.core.groups import ParamGroup
from fastopt.schedules import LearningRateSchedule, deserialize, serialize

#: keys of torch.optim's param groups that choose an implementation, not the update rule
_TORCH_SWITCHES = frozenset({"foreach", "fused", "capturable", "differentiable"})


class StateDictIO:
    """Export and import of the optimizer's state."""

    def _exported_states(self, g):
        return self._required_states(self.param_groups[g])

    def state_dict(self):
        """The optimizer state in torch's layout: ``{"state": {i: {...}}, "param_groups": [...]}``.

        State arrays are copies shaped like their parameters; ``step`` is an int.
        """
        state = {}
        for p in self._params:
            step = self._steps[p.index]
            names = self._exported_states(p.group) + self._extra_states()
            if step == 0 and not self._state_before_first_step():
                continue
            entry = {"step": step} if self.counts_steps else {}
            if self.scalar_state_names:
                entry.update(self._scalar_state_of(p))
            for name in names:
                shape = self._state_shape(name, p, self.param_groups[p.group])
                if shape is not None:
                    entry[name] = p.states[name].reshape(shape).copy()
            if entry:  # torch keeps no entry for a param without state (SGD without momentum)
                state[p.index] = entry
        groups = []
        for g, group in enumerate(self.param_groups):
            d = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}  # not the live values
            if isinstance(d.get("lr"), LearningRateSchedule):
                d["lr"] = serialize(d["lr"])
            d["params"] = [p.index for p in self._group_params[g]]
            groups.append(d)
        meta = {"optimizer": type(self).__name__, "format": 1, "skipped_steps": self.skipped_steps,
                "calls": self._calls}
        if not self.counts_steps:  # the internal counts (first-step rules, accumulation windows)
            meta["steps"] = list(self._steps)
        return {"state": state, "param_groups": groups, "fastopt": meta}

    def _state_before_first_step(self):
        return False

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()``; everything is checked before anything changes."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        meta = state_dict.get("fastopt")
        if isinstance(meta, dict) and meta.get("optimizer") not in (None, type(self).__name__):
            raise ValueError(f"state_dict is from {meta.get('optimizer')}, not {type(self).__name__}")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or not all(isinstance(x, dict) for x in groups):
            raise TypeError("state_dict['param_groups'] must be a list of dicts, got "
                            f"{type(groups).__name__}")
        if not isinstance(state_dict["state"], dict):
            raise TypeError(f"state_dict['state'] must be a dict, got {type(state_dict['state']).__name__}")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} parameter groups, the optimizer has {len(self.param_groups)}")
        index_map, new_groups = self._loaded_groups(groups)
        extras = self._extra_states()  # optional: a state_dict saved without the option loads
        loads = self._loaded_states(state_dict["state"], index_map, new_groups, extras)
        steps, skipped, calls = self._loaded_counts(meta, loads)
        # all checked: commit
        self._commit_load(new_groups, loads, extras, steps, skipped, calls)

    def _loaded_groups(self, groups):
        """The saved groups checked against this optimizer's: the saved parameter ids mapped
        to the parameters, and each group's hyperparameters as they will be (nothing set yet)."""
        index_map = {}
        new_groups = []
        for g, (saved, mine) in enumerate(zip(groups, self._group_params)):
            ids = saved.get("params", ())
            if not isinstance(ids, (list, tuple)):
                raise TypeError(f"state_dict['param_groups'][{g}]['params'] must be a list, got {type(ids).__name__}")
            ids = list(ids)
            if len(ids) != len(mine):
                raise ValueError(f"state_dict group {g} has {len(ids)} parameters, the optimizer's has {len(mine)}")
            for sid, p in zip(ids, mine):
                index_map[sid] = p
            hyper = ParamGroup(self.param_groups[g])
            # torch.optim's groups also hold implementation switches: ignore them (and
            # decoupled_weight_decay where it matches this class) so torch's state_dict loads
            saved = {k: v for k, v in saved.items() if k not in _TORCH_SWITCHES and not (
                k == "decoupled_weight_decay" and v == getattr(self, "decoupled", False))}
            # another optimizer's hyperparameters mean the wrong checkpoint; any other extra key
            # (a torch scheduler's initial_lr, a user's tag) is kept, as torch.optim keeps it
            unknown = (set(saved) - set(self.defaults) - {"params"}) & _all_hyperparameters()
            if unknown:
                raise ValueError(f"state_dict group {g} has hyperparameters {sorted(unknown)} "
                                 f"that {type(self).__name__} does not have")
            hyper.update({k: v for k, v in saved.items() if k != "params"})
            if isinstance(hyper.get("lr"), dict):
                hyper["lr"] = deserialize(hyper["lr"])
            self._check_group(hyper, f"state_dict param_groups[{g}]")
            new_groups.append(hyper)
        return index_map, new_groups

    def _loaded_states(self, saved, index_map, new_groups, extras):
        """Each saved state entry checked (keys, shapes, dtypes, step): (param, arrays, step)."""
        allowed = (set(self.state_names) | set(extras) | set(self.scalar_state_names)
                   | ({"step"} if self.counts_steps else set()))
        loads = []
        for sid, entry in saved.items():
            if sid not in index_map:
                raise ValueError(f"state_dict has state for parameter {sid!r}, which no group lists")
            p = index_map[sid]
            if not isinstance(entry, dict):
                raise TypeError(f"state_dict['state'][{sid!r}] must be a dict of state values, "
                                f"got {type(entry).__name__}")
            if set(entry) - allowed:
                raise ValueError(f"state_dict state {sid!r} has keys {sorted(entry)}; "
                                 f"{type(self).__name__} uses {sorted(allowed)}")
            required = {n for n in self._required_states(new_groups[p.group])
                        if self._state_shape(n, p, new_groups[p.group]) is not None}
            missing = required - set(entry)
            if missing:
                raise ValueError(f"state_dict state {sid!r} lacks {sorted(missing)}")
            arrays = {}
            for name in sorted(required | (set(extras) & set(entry))):
                value = np.asarray(entry[name])
                shape = self._state_shape(name, p, new_groups[p.group])
                if value.shape != shape and value.size != math.prod(shape):
                    raise ValueError(f"state_dict state {sid!r} '{name}' has shape {value.shape}, "
                                     f"the parameter has shape {p.array.shape}"
                                     + ("" if shape == p.array.shape else f" (the state's: {shape})"))
                if value.dtype.kind not in "fiu":
                    raise TypeError(f"state_dict state {sid!r} '{name}' has dtype {value.dtype}")
                arrays[name] = value
            step = step_count(entry.get("step", 1), f"state_dict['state'][{sid!r}]['step']") if self.counts_steps else 1
            loads.append((p, arrays, step))
        return loads

    def _loaded_counts(self, meta, loads):
        """The counts kept under "fastopt" checked: per-parameter steps (rules without a step
        state), skipped steps and calls."""
        steps = meta.get("steps") if isinstance(meta, dict) and not self.counts_steps else None
        if steps is not None and (not isinstance(steps, (list, tuple)) or len(steps) != len(self._params)
                                  or not all(isinstance(x, (int, np.integer)) and x >= 0 for x in steps)):
            raise ValueError("state_dict 'fastopt' steps must be one count >= 0 per parameter")
        skipped = meta.get("skipped_steps", 0) if isinstance(meta, dict) else 0
        if isinstance(skipped, bool) or not isinstance(skipped, (int, np.integer)) or skipped < 0:
            raise ValueError("state_dict 'fastopt' skipped_steps must be a count >= 0")
        # the calls so far (micro-steps of gradient accumulation included); a state_dict without
        # them (torch's) resumes at the start of a window after its steps
        calls = meta.get("calls") if isinstance(meta, dict) else None
        if calls is None:
            done = max([s for _, _, s in loads] + [int(x) for x in (steps or ())], default=0)
            calls = done * (self.gradient_accumulation_steps or 1)
        if isinstance(calls, bool) or not isinstance(calls, (int, np.integer)) or calls < 0:
            raise ValueError("state_dict 'fastopt' calls must be a count >= 0")
        return steps, skipped, calls

    def _commit_load(self, new_groups, loads, extras, steps, skipped, calls):
        """Write what ``load_state_dict`` checked: groups, states, counts."""
        for g, hyper in enumerate(new_groups):
            group = self.param_groups[g]
            for k, v in hyper.items():
                if k != "params":
                    dict.__setitem__(group, k, v)
            group._touch()
            self._allocate(g, self._required_states(group))
        loaded = {p.index for p, _, _ in loads}
        for p in self._params:
            if p.index not in loaded:
                for name, view in p.states.items():
                    view.fill(self._state_init(name, self.param_groups[p.group]))
                self._steps[p.index] = 0
            for name in extras:  # not in the state_dict: as at construction
                if p.index not in loaded or name not in next(a for q, a, _ in loads if q is p):
                    if name == "ema":
                        p.states[name][...] = p.flat
                    else:
                        p.states[name].fill(0)
        for p, arrays, step in loads:
            for name, value in arrays.items():
                p.states[name][...] = value.reshape(-1)
            self._steps[p.index] = step
        if steps is not None:
            self._steps[:] = [int(x) for x in steps]
        self.skipped_steps = int(skipped)
        self._calls = int(calls)
        self._plan = None


def _all_hyperparameters():
    """The keyword names of every optimizer class defined so far (their hyperparameters)."""
    import inspect
    names, todo = set(), [StateDictIO]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        names.update(inspect.signature(cls.__init__).parameters)
    return names - {"self", "params", "args", "kwargs"}
