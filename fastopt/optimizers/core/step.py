"""The step pipeline: the training-loop options in the order they apply (DESIGN.md section 3).

1. ``step(grads)`` checks the grads against the cached plan (identity checks only when the
   same gradient arrays come back, full checks when they change);
2. with ``global_clipnorm``/``clipnorm`` or a finite check: one reduction pass (float64
   partials) gives the norm, and the clipping coefficient joins ``grad_scale``;
3. one kernel call per run of parameters that are consecutive in one buffer (all of them,
   for the views of one ``fastopt.flatten``) and whose grads are consecutive too;
4. step counters advance. Nothing is allocated per step.

Gradient accumulation, the weight EMA and unscaling (a LossScaler's step) take
``_step_options``, Keras 3's loop.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt import _backends
from fastopt._validate import real
from fastopt.optimizers.core.groups import _edits
from fastopt.optimizers.core.plan import _Plan


class StepPipeline:
    """``step`` and what it runs: clipping coefficients, kernel calls, accumulation windows."""

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
