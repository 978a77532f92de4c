"""Parameter groups: torch's dicts of params and hyperparameters, validated when edited.

An edit of any group bumps one global counter, so the hot path of a step compares one integer;
a group is re-validated (and a newly enabled state allocated) at the first step after its edit.
"""
from __future__ import annotations

import numpy as np

from fastopt._validate import check_param, overlapping, span
from fastopt.flat import _owner, address

#: bumped by every edit of any ParamGroup: an optimizer re-reads its groups only after one (the
#: hot path compares one integer instead of each group's version)
_edits = [0]


class ParamGroup(dict):
    """A parameter group (a dict as in torch); any edit takes effect at the next step."""

    __slots__ = ("version",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.version = 0

    def _touch(self):
        self.version += 1
        _edits[0] += 1

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._touch()

    def __delitem__(self, key):
        super().__delitem__(key)
        self._touch()

    def update(self, *args, **kwargs):
        super().update(*args, **kwargs)
        self._touch()

    def setdefault(self, key, default=None):
        self._touch()
        return super().setdefault(key, default)

    def pop(self, *args):
        self._touch()
        return super().pop(*args)

    def __reduce__(self):
        return (ParamGroup, (dict(self),))


class _Param:
    """One parameter: the caller's array, its flat view, its group and its state views."""

    __slots__ = ("index", "array", "flat", "group", "states", "owner", "offset")

    def __init__(self, index, array, group):
        self.index = index
        self.array = array
        self.flat = array.reshape(-1)
        self.group = group
        self.states = {}
        self.owner = _owner(array)  # byte offset into owner: adjacent params can share a call
        self.offset = address(array) - address(self.owner) if self.owner is not None else -1


class ParamGroups:
    """The optimizer's groups: adding one, checking one, re-reading them after an edit."""

    def add_param_group(self, param_group):
        """Add a group (a dict with "params" and optional hyperparameters), as in torch."""
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("param_group must be a dict with a 'params' entry")
        arrays = param_group["params"]
        arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
        # an empty group is allowed, as in torch (ZeroRedundancyOptimizer gives a rank groups
        # whose parameters all live on other ranks); an optimizer without any parameter is not
        g = len(self.param_groups)
        for k, a in enumerate(arrays):
            check_param(a, f"param_groups[{g}]['params'][{k}]" if self._grouped else f"params[{k}]")
        unknown = set(param_group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected hyperparameters {sorted(unknown)}")
        group = ParamGroup(self.defaults)
        group.update({k: v for k, v in param_group.items() if k != "params"})
        self._check_group(group, f"param_groups[{g}]")
        # overlap with existing params and state, and within the new arrays
        spans = [(s, e, f"params[{g}][{k}]") for k, a in enumerate(arrays) for s, e in [span(a)]]
        clash = overlapping(spans + self._state_spans())
        if clash:
            raise ValueError(f"parameters overlap in memory ({clash[0]} and {clash[1]}); "
                             "each parameter must be a distinct array, in one group only, "
                             "and must not share memory with optimizer state")
        group["params"] = list(arrays)
        group.version = 0
        self.param_groups.append(group)
        start = len(self._params)
        for a in arrays:
            self._params.append(_Param(len(self._params), a, g))
            self._steps.append(0)
        self._group_params = [[p for p in self._params if p.group == gi] for gi in range(len(self.param_groups))]
        self._hyper = [None] * len(self.param_groups)
        self._seen_edit = -1
        self._allocate(g, self._required_states(group) + self._extra_states())
        self._plan = None
        return self._params[start:]

    def _check_group(self, group, where):
        """``_check_hyper`` of a group whose lr may be a schedule (checked at step 0, kept)."""
        missing = [k for k in self.defaults if k not in group]
        if missing:  # a deleted key: say which, not a KeyError from deep inside the check
            raise ValueError(f"{where} has no {', '.join(map(repr, missing))}; every group of "
                             f"{type(self).__name__} needs all of {sorted(self.defaults)}")
        schedule = _schedule_of(group["lr"])
        h = self._check_hyper(group if schedule is None else {**group, "lr": schedule(0)}, where)
        h["_schedule"] = schedule
        return h

    def _refresh_hyper(self):
        """Validated hyperparameters per group, re-checked only after a group was edited."""
        hypers = self._hyper
        if self._seen_edit == _edits[0]:
            return hypers
        seen = _edits[0]
        for g, group in enumerate(self.param_groups):
            h = hypers[g]
            if h is None or h["_version"] != group.version:
                h = self._check_group(group, f"param_groups[{g}]")
                h["_version"] = group.version
                h["_static"] = self._static_scalars(h)
                h["_sign"] = -1.0 if h["maximize"] else 1.0
                h["_states"] = tuple(self._required_states(group))
                if h["_states"] != (hypers[g] or {}).get("_states"):
                    members = self._group_params[g]
                    fresh = [n for n in h["_states"] if members and n not in members[0].states]
                    self._allocate(g, h["_states"])  # a newly enabled state (e.g. amsgrad)
                    if fresh and hypers[g] is not None:
                        self._on_new_state(g, fresh)
                    self._plan = None
                hypers[g] = h
        self._seen_edit = seen
        return hypers

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


def _schedule_of(lr):
    """``lr`` itself if it is a schedule (a callable of the step), else None."""
    if callable(lr) and not isinstance(lr, (int, float, np.number)):
        return lr
    return None


def _as_groups(params):
    if isinstance(params, np.ndarray):
        return [{"params": [params]}], False
    if isinstance(params, dict):
        raise TypeError("params must be an array, a list of arrays or a list of dicts, got a dict")
    try:
        items = list(params)
    except TypeError:
        raise TypeError(f"params must be an array, a list of arrays or a list of dicts, "
                        f"got {type(params).__name__}") from None
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(x, dict) for x in items):
        return items, True
    if any(isinstance(x, dict) for x in items):
        raise TypeError("params mixes arrays and group dicts")
    return [{"params": items}], False
