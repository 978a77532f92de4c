"""State storage: every per-parameter state array, allocated once in staggered flat buffers.

A rule names its states (``state_names``, narrowed per group by ``_required_states``); each
state of a group gets one buffer per dtype, its parameters' states adjacent in it (so adjacent
parameters share one kernel call), staggered so that no two buffers sit a power of two apart.
A state a group does not use is passed to the kernel as an empty array and never touched.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt._validate import span
from fastopt.flat import alloc_staggered

#: the per-parameter arrays of the training-loop options (weight EMA, gradient accumulation)
_LOOP_STATES = ("ema", "accumulated_grad")


class StateStorage:
    """Allocation, shapes and spans of the state arrays; the ``state`` view of them."""

    def _allocate(self, g, names):
        """Allocate the named states of group ``g`` once: one staggered buffer per name and dtype."""
        params = self._group_params[g]
        for name in names:
            if not params or name in params[0].states:
                continue
            for dtype in {p.array.dtype for p in params}:
                members = [p for p in params if p.array.dtype == dtype]
                # the training-loop states start at zero (EMA: at the params, below), whatever the
                # rule's own states start at (Adagrad's initial_accumulator_value)
                fill = 0.0 if name in _LOOP_STATES else self._state_init(name, self.param_groups[g])
                sizes = [math.prod(shape) if (shape := self._state_shape(name, p, self.param_groups[g])) is not None
                         else 0 for p in members]
                buf = alloc_staggered(sum(sizes), dtype, fill=fill)
                self._buffers.append(buf)
                offset = 0
                for p, size in zip(members, sizes):
                    p.states[name] = buf[offset:offset + size]
                    if name == "ema":
                        p.states[name][...] = p.flat  # the average starts at the parameters
                    offset += size
        self._spans = None

    def _state_shape(self, name, p, group):
        """The shape of parameter ``p``'s state ``name`` under ``group``'s hyperparameters: the
        parameter's own, another (Adafactor's factored moments), or None where ``p`` has no such
        state (it is then allocated empty and left out of ``state`` and ``state_dict``)."""
        return p.array.shape

    def _extra_states(self):
        """The per-parameter arrays of the training-loop options, after the rule's states."""
        return (("ema",) if self.use_ema else ()) + (
            ("accumulated_grad",) if self.gradient_accumulation_steps else ())

    def _state_spans(self):
        if self._spans is None:
            spans = [span(p.array) + (f"params {p.index}",) for p in self._params]
            spans += [span(b) + ("optimizer state",) for b in self._buffers]
            self._spans = sorted(s for s in spans if s[1] > s[0])
        return self._spans

    def _required_states(self, group):
        """The state arrays this group's hyperparameters use (subclasses narrow it)."""
        return self.state_names

    def _state_init(self, name, group):
        return 0.0

    def _on_new_state(self, g, names):
        """Called when an edit of group ``g`` enables state ``names`` after construction."""

    def _scalar_state_of(self, p):
        """The ``scalar_state_names`` values of parameter ``p`` now (what ``state``, ``state_dict``
        and fastopt.torch's state tensors show); by default ``_scalar_state`` at its step."""
        return self._scalar_state(self._refresh_hyper()[p.group], self._steps[p.index])

    def _scalar_state(self, hyper, step):
        """The values of ``scalar_state_names`` after ``step`` steps with ``hyper``."""
        return {}

    def _empty(self, dtype):
        return np.empty(0, dtype)

    @property
    def state(self):
        """Per-parameter state (views into the flat buffers), one dict per parameter."""
        out = []
        for p in self._params:
            entry = {"step": self._steps[p.index]} if self.counts_steps else {}
            if self.scalar_state_names:
                entry.update(self._scalar_state_of(p))
            group = self.param_groups[p.group]
            entry.update({k: v.reshape(shape) for k, v in p.states.items()
                          if (shape := self._state_shape(k, p, group)) is not None})
            out.append(entry)
        return out
