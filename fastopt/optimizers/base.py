"""The optimizer base: parameter groups, flat staggered state, validation, the fused step.

A step (DESIGN.md section 3):
1. ``step(grads)`` checks the grads against the cached plan (identity checks only when the
   same gradient arrays come back, full checks when they change);
2. with ``global_clipnorm``/``clipnorm``: one reduction pass (float64 partials) gives the
   norm, and the clipping coefficient joins ``grad_scale``;
3. one kernel call per run of parameters that are consecutive in one buffer (all of them,
   for the views of one ``fastopt.flatten``) and whose grads are consecutive too;
4. step counters advance. Nothing is allocated per step.
"""
from __future__ import annotations

import bisect
import copy
import math
import weakref

import numpy as np

from fastopt import _backends
from fastopt._validate import (check_grad, check_param, count_or_none, flag, overlapping, positive_or_none,
                               real, span, step_count)
from fastopt.flat import _owner, address, alloc_staggered, span_view
from fastopt.schedules import LearningRateSchedule, deserialize, serialize


#: the per-parameter arrays of the training-loop options (weight EMA, gradient accumulation)
_LOOP_STATES = ("ema", "accumulated_grad")

#: bumped by every edit of any ParamGroup: an optimizer re-reads its groups only after one (the
#: hot path compares one integer instead of each group's version)
_edits = [0]

#: keys of torch.optim's param groups that choose an implementation, not the update rule
_TORCH_SWITCHES = frozenset({"foreach", "fused", "capturable", "differentiable"})


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


class Optimizer:
    """Base class: subclasses give the kernel, the state names and the per-step scalars.

    Args common to every optimizer (keyword-only):
        maximize: ascend instead of descend (torch).
        clipnorm: clip each gradient array to this L2 norm (Keras).
        clipvalue: clip every gradient element to [-clipvalue, clipvalue] (Keras).
        global_clipnorm: clip all gradients together to this global L2 norm (Keras).
        use_ema: keep an exponential moving average of the parameters (Keras), updated in the
            same pass as the parameters: ``ema = m * ema + (1 - m) * p`` after each step
            (``m = 0`` on the first). ``ema_params``, ``swap_ema()``, ``finalize_variable_values()``.
        ema_momentum: ``m`` (0.99). ema_overwrite_frequency: every this many steps the
            parameters are overwritten with their average (Keras; None: never).
        gradient_accumulation_steps: ``k`` >= 2: each call adds its gradient to an accumulator and
            every k-th call updates with the mean of the k gradients (Keras 3's semantics: the step
            count, bias corrections and first-step rules count updates, a learning-rate schedule
            sees the number of calls, the weight EMA advances on every call with momentum 0
            throughout the first window, and ``ema_overwrite_frequency`` counts updates).
        flush_denormals: run the kernels with the CPU's flush-to-zero and denormals-are-zero modes
            (FTZ/DAZ, in every thread that runs a chunk, restored after it): denormal inputs read
            as 0 and denormal results become 0, which keeps denormal-heavy steps at full speed
            but changes those results (torch.optim, whose kernels do not flush, would keep the
            tiny values). Off by default; every rule (each pass of the multi-pass ones) on x86-64
            with the numba and cython backends (the python backend and other CPUs run unflushed).
        skip_nonfinite: check the gradients first (one reduction pass, the one global-norm
            clipping makes anyway) and skip a step with an inf or NaN, leaving parameters, states,
            EMA and step counts untouched; ``skipped_steps`` counts them (optax's apply_if_finite).
        backend: 'numba', 'cython' or 'python' for this optimizer (default: the active one).
    """

    #: kernel name in fastopt._kernels
    kernel = None
    #: every per-parameter state array, in the kernel's argument order
    state_names = ()
    #: whether state carries a step counter (torch's SGD has none)
    counts_steps = True
    #: per-parameter scalar state that follows from the step and the hyperparameters (NAdam's
    #: mu_product): exported by ``state``/``state_dict`` from ``_scalar_state``, ignored on load
    scalar_state_names = ()
    #: one kernel call per parameter array (rules with per-array statistics: LAMB, LARS,
    #: Adafactor), never one call for a run of adjacent arrays
    per_array = False
    #: whether ``_run_call`` replaces the single kernel call of each call (multi-pass rules)
    custom_call = False
    #: words per element a multi-pass rule moves beyond one read-modify-write pass over p and its
    #: states and one read of g (LAMB re-reads p, m, v and writes p: 4); the bench counts them
    extra_words_per_element = 0
    #: None (per-step scalar state in double), or the rounding of the scalar type a framework
    #: keeps it in (fastopt.torch sets float32's where torch's default dtype is float32, so that
    #: NAdam's mu_product and ASGD's eta and mu round as torch.optim's do)
    _scalar_round = None
    #: None, or a function of the per-call sums of squares that returns them summed over every
    #: process holding a shard of the same parameters (fastopt.torch sets it for FSDP2's DTensors)
    _reduce_sums = None

    def __init__(self, params, defaults, *, backend=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 gradient_accumulation_steps=None, skip_nonfinite=False, flush_denormals=False):
        self.defaults = dict(defaults)
        self._check_group(self.defaults, "defaults")
        if backend is not None:
            _backends.backend(backend)  # fail now, not at the first step
        self._backend_name = backend
        self._clipnorm = self._clipvalue = self._global_clipnorm = None
        self._use_ema = flag("use_ema", use_ema)
        self._gradient_accumulation_steps = count_or_none("gradient_accumulation_steps",
                                                          gradient_accumulation_steps, 2)
        self._skip_nonfinite = False
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.skip_nonfinite = skip_nonfinite
        self._plan = None
        self.flush_denormals = flush_denormals
        self._seen_edit = -1  # the _edits count _hyper was validated at
        #: steps skipped for a non-finite gradient (skip_nonfinite or a LossScaler)
        self.skipped_steps = 0
        #: calls of ``step`` that counted (with gradient accumulation: micro-steps included);
        #: Keras's ``_iterations``
        self._calls = 0
        self.param_groups = []
        self._params = []
        self._steps = []
        self._buffers = []        # every state buffer, for overlap checks
        self._spans = None        # sorted byte spans of params and states (lazy)
        groups, self._grouped = _as_groups(params)
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups and state
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

    # ------------------------------------------------------------------ training-loop options
    # properties, so an assignment is validated like the keyword and the step's one "any option
    # set?" test (``_options``) stays current
    def _option(name, check, doc):
        """A training-loop option as a property: ``check(self, value)`` validates an assignment
        (returning the value to store) before it is stored."""
        attr = "_" + name

        def get(self):
            return getattr(self, attr)

        def set_(self, value):
            setattr(self, attr, check(self, value))
            self._options_changed()
        return property(get, set_, doc=doc)

    def _clip_check(name):
        def check(self, value):
            value = positive_or_none(name, value)
            others = [n for n in ("clipnorm", "clipvalue", "global_clipnorm")
                      if n != name and getattr(self, "_" + n) is not None]
            if value is not None and others:
                raise ValueError(f"Only one of clipnorm, clipvalue and global_clipnorm can be set (as in Keras); "
                                 f"{others[0]} is set")
            return value
        return check

    clipnorm = _option("clipnorm", _clip_check("clipnorm"), "``clipnorm`` (see the class); None: off.")
    clipvalue = _option("clipvalue", _clip_check("clipvalue"), "``clipvalue`` (see the class); None: off.")
    global_clipnorm = _option("global_clipnorm", _clip_check("global_clipnorm"),
                              "``global_clipnorm`` (see the class); None: off.")
    skip_nonfinite = _option("skip_nonfinite", lambda self, v: flag("skip_nonfinite", v),
                             "Whether a step whose gradients hold an inf or NaN is skipped (see the class).")
    ema_momentum = _option("ema_momentum", lambda self, v: real("ema_momentum", v, low=0.0, high=1.0),
                           "The weight EMA's momentum (see the class).")
    ema_overwrite_frequency = _option("ema_overwrite_frequency",
                                      lambda self, v: count_or_none("ema_overwrite_frequency", v, 1),
                                      "Steps between overwrites of the parameters by their EMA, or None.")
    del _option, _clip_check

    @property
    def use_ema(self):
        """Whether the weight EMA is kept (fixed at construction: its arrays are allocated then)."""
        return self._use_ema

    @property
    def gradient_accumulation_steps(self):
        """The micro-steps per update, or None (fixed at construction: the accumulator is allocated then)."""
        return self._gradient_accumulation_steps

    def _options_changed(self):
        self._options = bool(self._gradient_accumulation_steps or self._use_ema or self._skip_nonfinite
                             or self._clipnorm is not None or self._global_clipnorm is not None)
        self._clip = math.inf if self._clipvalue is None else self._clipvalue

    @property
    def flush_denormals(self):
        """Whether the kernels run with flush-to-zero and denormals-are-zero (see the class)."""
        return self._flush_denormals

    @flush_denormals.setter
    def flush_denormals(self, value):
        self._flush_denormals = flag("flush_denormals", value)
        self._plan = None  # the plan's calls carry the flag

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

    def _check_hyper(self, group, where):  # pragma: no cover - abstract
        raise NotImplementedError

    def _scalars(self, hyper, step):  # pragma: no cover - abstract
        """The kernel scalars that change with the step (1-based), first after the state arrays."""
        raise NotImplementedError

    def _static_scalars(self, hyper):  # pragma: no cover - abstract
        """The kernel scalars that follow ``_scalars``'s and only change when a group is edited."""
        raise NotImplementedError

    def _scalar_state_of(self, p):
        """The ``scalar_state_names`` values of parameter ``p`` now (what ``state``, ``state_dict``
        and fastopt.torch's state tensors show); by default ``_scalar_state`` at its step."""
        return self._scalar_state(self._refresh_hyper()[p.group], self._steps[p.index])

    def _scalar_state(self, hyper, step):
        """The values of ``scalar_state_names`` after ``step`` steps with ``hyper``."""
        return {}

    def _empty(self, dtype):
        return np.empty(0, dtype)

    # ------------------------------------------------------------------ the step
    def step(self, grads):
        """Update every parameter in place from ``grads`` (structured like ``params``).

        ``grads`` is one array (when ``params`` was one array), a list with one array per
        parameter in group order, or a list of lists, one per group. ``None`` skips a
        parameter (its state and step count stay), as a missing ``.grad`` does in torch.
        Every check runs before any array is written. Returns False when the step was skipped
        for a non-finite gradient (``skip_nonfinite``), else True.
        """
        grads = (grads,) if type(grads) is np.ndarray and len(self._params) == 1 else self._flat_grads(grads)
        return self._step(grads, grads)

    def _scaled_step(self, grads, unscale, check_finite):
        """``step`` with the gradients multiplied by ``unscale`` first and, with ``check_finite``,
        skipped when they hold an inf or NaN (``LossScaler.step``)."""
        grads = (grads,) if type(grads) is np.ndarray and len(self._params) == 1 else self._flat_grads(grads)
        return self._step(grads, grads, real("unscale", unscale), check_finite)

    def _step(self, grads, keys, unscale=1.0, check_finite=False):
        """The step over a flat list of gradient arrays; ``keys`` are the objects whose identity
        says the gradients are unchanged since the last step (the arrays themselves here; the
        gradient tensors for fastopt.torch, whose NumPy views are made afresh each step).
        ``unscale`` multiplies the gradients first (a loss scale's inverse); ``check_finite``
        skips a step whose gradients hold an inf or NaN. Returns whether the step was applied."""
        # the hot path: one integer compare for the groups, identity checks for the gradients
        hypers = self._hyper if self._seen_edit == _edits[0] else self._refresh_hyper()
        plan = self._plan
        if (plan is None or plan.backend.name != (self._backend_name or _backends._state["backend"])
                or not plan.matches(grads, keys)):
            plan = self._plan = _Plan(self, grads, _backends.backend(self._backend_name), keys)
        coefs = None
        if self._options or check_finite or unscale != 1.0:
            if self._gradient_accumulation_steps or self._use_ema or unscale != 1.0:
                return self._step_options(plan, grads, hypers, unscale, check_finite or self._skip_nonfinite)
            coefs = self._clip_coefficients(plan, grads, check_finite or self._skip_nonfinite)
            if coefs is False:
                self.skipped_steps += 1
                return False
        threads = _backends._state["threads"]
        steps = self._steps
        clip = self._clip
        threshold = _backends.PARALLEL_THRESHOLD
        calls = plan.calls
        # several calls: every call's scalars first, so a bad scheduled lr raises before any write
        scalars_of = self._all_scalars(plan, hypers) if len(calls) > 1 else None
        for k, call in enumerate(calls):
            hyper = hypers[call.group]
            step = steps[call.first] + 1  # recomputed: cheaper than a list of them (hot path)
            scalars = (self._step_scalars(hyper, step, call.group) if scalars_of is None
                       else scalars_of[(call.group, step)])
            scale = hyper["_sign"] if coefs is None else hyper["_sign"] * coefs[k]
            if self.custom_call:
                self._run_call(call, call.grad(grads), scalars, call.tail, scale, clip,
                               threads if (threads > 1 and call.size >= threshold) else 1)
            elif threads > 1 and call.size >= threshold:
                call.kernel(True)(call.p, call.grad(grads), *call.states, *scalars, *call.tail, scale, clip,
                                  threads)
            else:
                (call.kernels[0] or call.kernel(False))(call.p, call.grad(grads), *call.states, *scalars,
                                                        *call.tail, scale, clip, 1)
            if call.stop - call.first == 1:
                steps[call.first] = step
            else:
                self._advance(call, step)
        self._calls += 1
        return True

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):  # pragma: no cover - abstract
        """One call's update when ``custom_call``: ``call.p`` (flat), ``g`` (its flat gradient),
        ``call.states``, the step's ``scalars``, the template's ``tail`` arguments (accumulator,
        EMA), then ``scale`` (grad_scale), ``clip`` and ``nchunks``, as the kernel would get them.
        With ``per_array`` each call is one parameter: ``self._params[call.first]``."""
        raise NotImplementedError

    def _all_scalars(self, plan, hypers, lr_step=None):
        """Every call's kernel scalars, first: a bad scheduled lr raises before any write.
        ``lr_step`` is the step a schedule sees (default: the update's step - 1)."""
        steps = self._steps
        scalars_of = {}
        for call in plan.calls:
            key = (call.group, steps[call.first] + 1)
            if key not in scalars_of:
                scalars_of[key] = self._step_scalars(hypers[call.group], key[1], key[0], lr_step)
        return scalars_of

    def _advance(self, call, step):
        if call.stop - call.first == 1:
            self._steps[call.first] = step
        else:
            self._steps[call.first:call.stop] = [step] * (call.stop - call.first)

    def _step_options(self, plan, grads, hypers, unscale, check_finite):
        """``_step`` with gradient accumulation, weight EMA or unscaling (a LossScaler's step).

        Keras 3's loop, with ``c`` the calls before this one and ``k`` the accumulation steps
        (1 without accumulation): the call updates when ``(c + 1) % k == 0``; the EMA advances on
        every call with momentum 0 while ``c // k == 0``; the parameters are overwritten by their
        average when ``(c // k + 1) % ema_overwrite_frequency == 0``; a schedule sees ``c``.
        A call whose step completes an accumulation window runs the rule's kernel, which adds
        the accumulated sum to this gradient and zeroes the accumulator in the same pass; with
        clipping or a finite check the sum is formed first (one ``accumulate`` pass) so the norm
        pass can read it. Other calls of the window run ``accumulate`` (acc += g, EMA).
        """
        k = self.gradient_accumulation_steps
        steps = self._steps
        calls = self._calls
        window = calls // k if k else calls  # Keras's ``iterations``
        threads = _backends._state["threads"]
        needs_norm = check_finite or self.global_clipnorm is not None or self.clipnorm is not None
        is_update = not k or (calls + 1) % k == 0
        update = [is_update] * len(plan.calls)
        grad_of = [call.grad(grads) for call in plan.calls]
        m = self.ema_momentum if window > 0 else 0.0
        summed = [False] * len(plan.calls)
        if k and needs_norm and is_update:
            for j, call in enumerate(plan.calls):  # acc += g * unscale: the window's sum, which the norm pass reads
                n = _backends.chunks_for(call.size)
                call.backend.kernel("accumulate", call.dtype, n > 1)(
                    call.p, grad_of[j], call.acc, call.ema, unscale, 0.0, 1.0, False, n)
                grad_of[j], summed[j] = call.acc, True
        coefs = self._clip_coefficients(plan, grads, check_finite, arrays=grad_of, only=update, unscale=unscale,
                                        summed=summed, mean_of=k)
        if coefs is False:  # a non-finite gradient: the window (or step) leaves no trace
            if k:
                for call in plan.calls:
                    call.acc.fill(0)
                self._calls -= k - 1
            self.skipped_steps += 1
            return False
        scalars_of = self._all_scalars(plan, hypers, lr_step=calls if k else None) if is_update else None
        clip = self.clipvalue if self.clipvalue is not None else math.inf
        freq = self.ema_overwrite_frequency
        overwrite = self.use_ema and freq and (window + 1) % freq == 0
        for j, call in enumerate(plan.calls):
            hyper = hypers[call.group]
            step = steps[call.first] + 1
            n = threads if (threads > 1 and call.size >= _backends.PARALLEL_THRESHOLD) else 1
            if not is_update:
                call.backend.kernel("accumulate", call.dtype, n > 1)(
                    call.p, grad_of[j], call.acc, call.ema, unscale, m, 1.0 - m, self.use_ema, n)
            else:
                coef = 1.0 if coefs is None else coefs[j]
                if summed[j]:  # the sum is the gradient; the kernel does not add it again
                    scale, fused, acc_s = hyper["_sign"] * coef / k, False, 1.0
                elif k:
                    scale, fused, acc_s = hyper["_sign"] * coef / k, True, unscale
                else:
                    scale, fused, acc_s = hyper["_sign"] * coef * unscale, False, 1.0
                tail = (call.acc, call.ema, acc_s, m, 1.0 - m, fused, self.use_ema, self._flush_denormals)
                if self.custom_call:
                    self._run_call(call, grad_of[j], scalars_of[(call.group, step)], tail, scale, clip, n)
                else:
                    call.kernel(n > 1)(call.p, grad_of[j], *call.states, *scalars_of[(call.group, step)], *tail,
                                       scale, clip, n)
                if summed[j]:
                    call.acc.fill(0)
                self._advance(call, step)
            if overwrite:  # Keras: (iterations + 1) % frequency, on every call of such a window
                call.backend.kernel("stream", call.dtype, n > 1)(call.ema, call.p, call.ema, 0.0, 0, n)
        self._calls = calls + 1
        return True

    def _step_scalars(self, hyper, step, g, lr_step=None):
        """The kernel scalars of group ``g`` at ``step`` (1-based), its lr schedule evaluated at
        ``lr_step`` (default ``step - 1``)."""
        schedule = hyper["_schedule"]
        if schedule is None:
            return self._scalars(hyper, step) + hyper["_static"]
        # Keras's convention: the first update sees the schedule at step 0
        at = step - 1 if lr_step is None else lr_step
        lr = real(f"learning rate (param_groups[{g}] lr schedule at step {at})", schedule(at), low=0.0)
        hyper = {**hyper, "lr": lr}
        return self._scalars(hyper, step) + self._static_scalars(hyper)

    def _flat_grads(self, grads):
        n = len(self._params)
        if isinstance(grads, np.ndarray):
            if n != 1:
                raise ValueError(f"grads is one array but the optimizer has {n} parameters")
            return (grads,)
        if not isinstance(grads, (list, tuple)):
            raise TypeError(f"grads must be an array or a list of arrays, got {type(grads).__name__}")
        ngroups = len(self.param_groups)
        if ngroups > 1 and len(grads) == ngroups and all(isinstance(x, (list, tuple)) for x in grads):
            nested = []
            for gi, (gs, ps) in enumerate(zip(grads, self._group_params)):
                if len(gs) != len(ps):
                    raise ValueError(f"grads[{gi}] has {len(gs)} arrays; group {gi} has {len(ps)} parameters")
                nested.extend(gs)
            return nested
        if len(grads) != n:
            raise ValueError(f"expected {n} gradients (one per parameter), got {len(grads)}")
        return grads

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

    def _clip_coefficients(self, plan, grads, check_finite=False, arrays=None, only=None, unscale=1.0,
                           summed=None, mean_of=None):
        """Per-call gradient factors for clipping (None: no clipping), or False when
        ``check_finite`` finds an inf or NaN. ``arrays`` (per call) replace the gradients the
        norm pass reads; ``only`` limits the pass to some calls; a ``summed`` call's array is an
        accumulation window's sum, whose mean (``/ mean_of``) is clipped."""
        clipping = self.global_clipnorm is not None or self.clipnorm is not None
        if not clipping and not check_finite:
            return None
        sums = plan.norm_sums(grads, arrays, only)
        if self._reduce_sums is not None:  # sharded parameters: the norm is every shard's
            sums = self._reduce_sums(sums)
        if check_finite and not all(math.isfinite(x) for x in sums):
            return False
        if not clipping:
            return None
        # the norms of the gradients the update sees: unscaled, the mean of an accumulated sum
        factors = [(1.0 / mean_of if summed[j] else abs(unscale)) if summed is not None else abs(unscale)
                   for j in range(len(sums))]
        if self.clipnorm is not None:  # Keras: g * clipnorm / max(norm(g), clipnorm)
            c = self.clipnorm
            return [c / max(math.sqrt(x) * f, c) if x == x else math.nan for x, f in zip(sums, factors)]
        norm = math.sqrt(math.fsum(x * f * f for x, f in zip(sums, factors)))
        c = self.global_clipnorm
        # Keras: clip_norm * min(1 / norm, 1 / clip_norm), NaN when the norm is not finite
        scale = c * min(1.0 / norm if norm > 0 else math.inf, 1.0 / c) if math.isfinite(norm) else math.nan
        return [scale] * len(plan.calls)

    # ------------------------------------------------------------------ state dict
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
        extras = self._extra_states()  # optional: a state_dict saved without the option loads
        allowed = (set(self.state_names) | set(extras) | set(self.scalar_state_names)
                   | ({"step"} if self.counts_steps else set()))
        loads = []
        for sid, entry in state_dict["state"].items():
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
        # all checked: commit
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

    # ------------------------------------------------------------------ weight EMA
    @property
    def ema_params(self):
        """The moving averages of the parameters (``use_ema``), shaped like them: live views."""
        self._require_ema("ema_params")
        return [p.states["ema"].reshape(p.array.shape) for p in self._params]

    def swap_ema(self):
        """Swap every parameter's values with its moving average, in place (for evaluation:
        call it again to swap back before training on)."""
        self._require_ema("swap_ema")
        for p in self._params:
            tmp = p.flat.copy()
            p.flat[...] = p.states["ema"]
            p.states["ema"][...] = tmp

    def finalize_variable_values(self, var_list=None):
        """Overwrite the parameters with their moving averages (Keras's name; end of training).
        ``var_list`` is accepted for Keras's signature; the optimizer's own parameters are
        the ones overwritten."""
        if self.use_ema:
            for p in self._params:
                p.flat[...] = p.states["ema"]

    def _require_ema(self, what):
        if not self.use_ema:
            raise ValueError(f"{what} needs an optimizer built with use_ema=True")

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

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for g, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {g}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


def _all_hyperparameters():
    """The keyword names of every optimizer class defined so far (their hyperparameters)."""
    import inspect
    names, todo = set(), [Optimizer]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        names.update(inspect.signature(cls.__init__).parameters)
    return names - {"self", "params", "args", "kwargs"}


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
            first, last = params[run[0]], params[run[-1]]
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
