"""The kernel calls of a step, for one set of gradient arrays, validated once.

Parameters consecutive in one buffer (the views of one ``fastopt.flatten``), in one group, with
one dtype and one step count, whose gradients are consecutive too, share one call; each call
holds its flat views of p and the states and resolves its kernels on first use.
"""
from __future__ import annotations

import bisect
import math
import weakref

import numpy as np

from fastopt import _backends
from fastopt._validate import check_grad, span
from fastopt.flat import _owner, address, span_view


class _Call:
    """One kernel call: a run of parameters consecutive in memory, with their states."""

    __slots__ = ("first", "stop", "group", "size", "p", "states", "dtype", "backend", "kernels",
                 "kernel_name", "goff", "merged", "tail", "acc", "ema", "by_name")

    def kernel(self, parallel):
        """The kernel for this call (``kernels[parallel]``, resolved on first use)."""
        k = self.kernels[parallel]
        if k is None:
            k = self.kernels[parallel] = self.backend.kernel(self.kernel_name, self.dtype, parallel)
        return k

    def named(self, name, parallel):
        """Kernel ``name`` (one pass of a multi-pass rule) for this call, resolved on first use."""
        key = (name, parallel)
        k = self.by_name.get(key)
        if k is None:
            k = self.by_name[key] = self.backend.kernel(name, self.dtype, parallel)
        return k

    def grad(self, grads):
        g = grads[self.first]
        if self.merged:
            return span_view(g if g.base is None else g.base, self.goff, self.size, self.dtype)
        return g if g.ndim == 1 else g.reshape(-1)


class _Plan:
    """The kernel calls for one set of gradient arrays, validated once.

    While the same gradient arrays come back (checked by identity through weak references,
    so the plan never keeps a caller's gradients alive) the plan is reused as is.
    """

    def __init__(self, opt, grads, backend, keys):
        params = opt._params
        spans = opt._state_spans()
        for i, (g, p) in enumerate(zip(grads, params)):
            if g is None:
                continue
            check_grad(g, p.array, f"grads[{i}]")
            start, stop = span(g)
            k = bisect.bisect_right(spans, (start, math.inf)) - 1
            hit = None
            for s in spans[max(k, 0):k + 2]:
                if s[0] < stop and start < s[1] and stop > start:
                    hit = s[2]
            if hit is not None:
                raise ValueError(f"grads[{i}] overlaps {hit}; gradients must not share memory "
                                 "with parameters or optimizer state")
        self.backend = backend
        self.refs = [None if g is None else weakref.ref(k) for g, k in zip(grads, keys)]
        # an array's dtype can be reassigned in place (changing its length): re-check it
        self.dtypes = [None if g is None else g.dtype for g in grads]
        self.calls = []
        merge = opt.clipnorm is None and not opt.per_array  # per-array clipping needs per-array calls
        runs = []
        for i, (g, p) in enumerate(zip(grads, params)):
            if g is None:
                continue
            # consecutive indices too: a skipped parameter's state lies between its neighbours'
            if merge and runs and runs[-1][-1] == i - 1 and _adjacent(params[i - 1], p, grads[i - 1], g,
                                                                      opt._steps):
                runs[-1].append(i)
            else:
                runs.append([i])
        hypers = opt._hyper
        for run in runs:
            first = params[run[0]]
            call = _Call()
            call.first, call.stop, call.group = run[0], run[-1] + 1, first.group
            call.size = sum(params[i].flat.size for i in run)
            call.dtype = first.array.dtype
            call.merged = len(run) > 1
            if call.merged:
                call.p = span_view(first.owner, first.offset, call.size, call.dtype)
                g0 = grads[run[0]]
                call.goff = address(g0) - address(_owner(g0))
            else:
                call.p, call.goff = first.flat, 0
            used = set(hypers[first.group]["_states"]) | set(opt._extra_states())

            def view(name):
                if name not in used:
                    return opt._empty(call.dtype)
                v = first.states[name]
                if call.merged:  # consecutive same-dtype params of a group have adjacent states
                    owner = _owner(v)
                    v = span_view(owner, address(v) - address(owner), call.size, call.dtype)
                return v
            call.states = tuple(view(name) for name in opt.state_names)
            call.acc, call.ema = view("accumulated_grad"), view("ema")
            call.tail = (call.acc, call.ema, 1.0, 0.0, 0.0, False, False, opt._flush_denormals)
            call.backend, call.kernel_name, call.kernels = backend, opt.kernel, [None, None]
            call.by_name = {}
            self.calls.append(call)
        self._norm_out = None

    def matches(self, grads, keys):
        refs = self.refs
        if len(refs) != len(grads):
            return False
        if len(refs) == 1:  # one array: no loop (the hot path of a flat buffer)
            r, g = refs[0], grads[0]
            if r is None:
                return g is None
            return g is not None and r() is keys[0] and g.dtype is self.dtypes[0]
        for r, g, k, dt in zip(refs, grads, keys, self.dtypes):
            if r is None:
                if g is not None:
                    return False
            elif g is None or r() is not k or g.dtype is not dt:
                return False
        return True

    def norm_sums(self, grads, arrays=None, only=None):
        """Sum of squares of each call's gradient, or of ``arrays[k]`` for call ``k`` (float64
        partials, fixed chunking); 0 for the calls ``only`` leaves out."""
        chunk = _backends.NORM_CHUNK
        if self._norm_out is None:
            counts = [max(1, -(-c.size // chunk)) for c in self.calls]
            self._norm_out = np.zeros(sum(counts))
            self._norm_lanes = np.zeros(sum(counts) * _backends.NORM_LANES)
            bounds = np.cumsum([0] + counts)
            self._norm_slices = [(self._norm_out[a:b], self._norm_lanes[a * _backends.NORM_LANES:
                                                                        b * _backends.NORM_LANES])
                                 for a, b in zip(bounds[:-1], bounds[1:])]
        sums = []
        for k, (call, (out, lanes)) in enumerate(zip(self.calls, self._norm_slices)):
            if only is not None and not only[k]:
                sums.append(0.0)
                continue
            x = call.grad(grads) if arrays is None else arrays[k]
            call.named("norm_partials", _backends.chunks_for(call.size) > 1)(
                x, out, lanes, chunk, _backends.NORM_LANES, 0, 2.0)
            sums.append(math.fsum(out))
        return sums


def _adjacent(a, b, ga, gb, steps):
    """Whether params ``a`` then ``b`` (and their grads) can share one kernel call."""
    if a.group != b.group or a.array.dtype != b.array.dtype or steps[a.index] != steps[b.index]:
        return False
    if a.owner is None or a.owner is not b.owner or b.offset != a.offset + a.array.nbytes:
        return False
    oa, ob = _owner(ga), _owner(gb)
    if oa is None or oa is not ob:
        return False
    return address(gb) == address(ga) + ga.nbytes
