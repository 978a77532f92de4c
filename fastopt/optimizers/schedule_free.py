"""Schedule-free AdamW and SGD, optax.contrib's formulation (one kernel), with eval()/train()."""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastopt import _backends
from fastopt._validate import betas, count_or_none, flag, real
from fastopt.optimizers.base import Optimizer


#: (max_lr, weight_sum) of a parameter not yet updated
_NO_WEIGHTS = (0.0, 0.0)


def _warmup(lr, warmup_steps, count):
    """optax.warmup_constant_schedule(0, lr, warmup_steps)(count); no warmup for 0."""
    if not warmup_steps:
        return lr
    frac = 1.0 - min(max(count, 0), warmup_steps) / warmup_steps
    return -lr * frac + lr


def _averaging(max_lr, weight_sum, lr_t, power):
    """optax's (max_lr, weight_sum, c_t) after a step at ``lr_t``: c_t = w / sum(w), w = max_lr**power,
    with 0/0 and inf/inf taken as 0 (optax's nan_to_num)."""
    max_lr = max_lr if (max_lr >= lr_t or max_lr != max_lr) else lr_t  # NaN stays, as jnp.maximum
    try:
        weight = max_lr ** power
    except OverflowError:  # beyond the doubles: inf, as optax's float arithmetic gives
        weight = math.inf
    weight_sum = weight_sum + weight
    if math.isnan(weight) or math.isnan(weight_sum):
        ck = math.nan
    elif weight_sum == 0 or math.isinf(weight):
        ck = 0.0
    else:
        ck = weight / weight_sum
    return max_lr, weight_sum, ck


def _scalar(value, where):
    if isinstance(value, np.ndarray) and value.size == 1:  # a 0-d tensor of a torch-style state_dict
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a real number, got {value!r}")
    return real(where, value, low=0.0)


class _ScheduleFree(Optimizer):
    """The parameters hold y, where gradients are taken; ``eval()`` puts the evaluation sequence x
    in them and ``train()`` brings y back. ``max_lr`` and ``weight_sum`` are per-parameter scalar
    state that depends on the learning-rate history: saved and restored by ``state_dict``."""

    kernel = "schedule_free"
    scalar_state_names = ("max_lr", "weight_sum")
    custom_call = True
    adaptive = False

    def __init__(self, params, defaults, **kwargs):
        self._weights = {}      # param index -> (max_lr, weight_sum); absent: (0, 0)
        self._training = True
        self._no_v = {}         # dtype -> the empty array passed for an unused v
        super().__init__(params, defaults, **kwargs)

    # ------------------------------------------------------------------ modes
    @property
    def training(self):
        """True in training mode (the parameters hold y), False after ``eval()`` (they hold x)."""
        return self._training

    def eval(self):
        """Write the evaluation sequence x into the parameters, in place (a no-op when already in
        eval mode, and for parameters not yet updated, whose x is themselves)."""
        if self._training:
            for p in self._params:
                if self._started(p):
                    p.flat[...] = p.states["x"]
            self._training = False
        return self

    def train(self):
        """Bring back the training sequence y = b1 * x + (1 - b1) * z, in place, computed as the
        step computes it (the same bits, while b1 is unchanged); a no-op in training mode."""
        if not self._training:
            hypers = self._refresh_hyper()
            for p in self._params:
                if self._started(p):
                    b1 = hypers[p.group]["b1"]
                    np.multiply(p.states["x"], b1, out=p.flat)
                    p.flat += (1.0 - b1) * p.states["z"]
            self._training = True
        return self

    def _started(self, p):
        """Whether ``p`` has had an update (its z and x exist; steps count updates)."""
        return self._steps[p.index] > 0

    def _step(self, grads, keys, unscale=1.0, check_finite=False):
        if not self._training:
            raise RuntimeError(f"{type(self).__name__}.step() in eval mode: the parameters hold the evaluation "
                               "sequence x; call train() before stepping")
        return super()._step(grads, keys, unscale, check_finite)

    # ------------------------------------------------------------------ the step
    def _check_common(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    warmup_steps=count_or_none(f"warmup_steps ({where})", group["warmup_steps"], 0) or 0,
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    weight_lr_power=real(f"weight_lr_power ({where})", group["weight_lr_power"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        lr, warmup = h["lr"], h["warmup_steps"]
        # optax: the weights see the wrapper's count (from 1), z the base optimizer's (from 0)
        bc2 = 1.0 - h["b2"] ** step if self.adaptive else 1.0
        return (_warmup(lr, warmup, step), _warmup(lr, warmup, step - 1), bc2, step == 1)

    def _static_scalars(self, h):
        b1 = h["b1"]
        b2 = h.get("b2", 0.0)
        return (b1, 1 - b1, b2, 1 - b2, h.get("eps", 0.0), h["weight_decay"], 1.0, self.adaptive)

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):
        lr_t, rest = scalars[0], scalars[1:]
        power = self._hyper[call.group]["weight_lr_power"]
        states = call.states
        if not self.adaptive:
            no_v = self._no_v.get(call.dtype)
            if no_v is None:
                no_v = self._no_v[call.dtype] = self._empty(call.dtype)
            states = states + (no_v,)
        weights = self._weights
        # one kernel call per run of parameters with the same averaging state: all of them, unless
        # their histories differ (a parameter skipped steps while the lr was edited)
        if call.stop - call.first == 1:  # one parameter (a flat buffer): one run, no search
            runs = ((weights.get(call.first, _NO_WEIGHTS), 0, call.size, (call.first,)),)
        else:
            runs, lo = [], 0  # [(max_lr, weight_sum), first element, end element, param indices]
            for p in self._params[call.first:call.stop]:
                w = weights.get(p.index, _NO_WEIGHTS)
                if runs and runs[-1][0] == w:
                    runs[-1][2] += p.flat.size
                    runs[-1][3].append(p.index)
                else:
                    runs.append([w, lo, lo + p.flat.size, [p.index]])
                lo = runs[-1][2]
        for w, lo, hi, members in runs:
            max_lr, weight_sum, ck = _averaging(*w, lr_t, power)
            args = (rest[0], ck, 1.0 - ck) + rest[1:]
            if len(runs) == 1:
                call.kernel(nchunks > 1)(call.p, g, *states, *args, *tail, scale, clip, nchunks)
            else:
                cut = [a[lo:hi] if a.size else a for a in (call.p, g, *states, tail[0], tail[1])]
                n = _backends.chunks_for(hi - lo)
                call.kernel(n > 1)(*cut[:-2], *args, cut[-2], cut[-1], *tail[2:], scale, clip, n)
            w = (max_lr, weight_sum)
            for index in members:
                weights[index] = w

    # ------------------------------------------------------------------ state
    def _scalar_state_of(self, p):
        """``max_lr`` and ``weight_sum``: they follow the learning-rate history, not the step."""
        return dict(zip(self.scalar_state_names, self._weights.get(p.index, _NO_WEIGHTS)))

    def state_dict(self):
        """As ``Optimizer.state_dict`` (``max_lr`` and ``weight_sum`` in each parameter's state),
        with the mode in ``["fastopt"]["training"]``."""
        sd = super().state_dict()
        sd["fastopt"]["training"] = self._training
        return sd

    def load_state_dict(self, state_dict):
        """As ``Optimizer.load_state_dict``, restoring ``max_lr``, ``weight_sum`` and the mode (the
        parameter arrays are not touched: call ``train()`` after loading an eval-mode state)."""
        weights, training = self._loaded_scalars(state_dict)  # checked before anything changes
        super().load_state_dict(state_dict)
        self._weights = {}
        for saved, mine in zip(state_dict["param_groups"], self._group_params):
            for sid, p in zip(saved.get("params", ()), mine):
                if sid in weights:
                    self._weights[p.index] = weights[sid]
        self._training = training

    def _loaded_scalars(self, state_dict):
        weights, training = {}, True
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            return weights, training  # the base's checks say what is wrong
        meta = state_dict.get("fastopt")
        if isinstance(meta, dict) and "training" in meta:
            training = flag("state_dict 'fastopt' training", meta["training"])
        for sid, entry in state_dict["state"].items():
            if not isinstance(entry, dict):
                continue
            names = [k for k in self.scalar_state_names if k in entry]
            if not names:
                step = entry.get("step", 0)
                if isinstance(step, (numbers.Real, np.ndarray)) and np.asarray(step).size == 1 \
                        and float(np.asarray(step).item()) > 0:
                    raise ValueError(f"state_dict state {sid!r} lacks {list(self.scalar_state_names)}")
                continue
            if len(names) != len(self.scalar_state_names):
                missing = [k for k in self.scalar_state_names if k not in entry]
                raise ValueError(f"state_dict state {sid!r} lacks {missing}")
            weights[sid] = tuple(_scalar(entry[k], f"state_dict state {sid!r} '{k}'")
                                 for k in self.scalar_state_names)
        return weights, training


class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-free AdamW (optax.contrib.schedule_free_adamw; Defazio et al. 2024).

    .. math::
        v_t &= (1 - \beta_2) g_t^2 + \beta_2 v_{t-1} \quad (g_t \text{ taken at } y_{t-1}) \\
        z_t &= z_{t-1} - \gamma^z_t \left(\frac{g_t}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
            + \lambda y_{t-1}\right) \\
        x_t &= (1 - c_t) x_{t-1} + c_t z_t, \quad
            c_t = \frac{M_t^r}{\sum_{k \le t} M_k^r}, \quad M_t = \max_{k \le t} \gamma_k \\
        y_t &= \beta_1 x_t + (1 - \beta_1) z_t

    Symbols: :math:`\gamma` ``lr`` (warmed up linearly over ``warmup_steps``: :math:`\gamma_t` at
    count t, :math:`\gamma^z_t` at count t - 1, as optax), :math:`\beta_{1,2}` ``betas``
    (:math:`\beta_1` interpolates: there is no first moment), :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, :math:`r` ``weight_lr_power``. The parameters hold y; x, z
    and v start at the parameters' values at the first update (v at 0). x, y and z change in one
    fused pass.

    Call ``eval()`` before evaluating (it writes x into the parameters) and ``train()`` before
    training on (it brings y back); ``step()`` in eval mode raises. ``training`` says which.

    .. warning::
       optax's conventions: ``warmup_steps=0`` means no warmup (optax's None; optax's 0 gives a
       learning rate of 0 for ever); the first warmup step does not move z (optax warms z's
       learning rate up from its own count, which starts at 0); the warmup learning rate is a
       double here (optax computes it in float32). ``max_lr`` and ``weight_sum`` depend on the
       learning-rate history (schedules, edits), so ``state_dict`` carries them per parameter.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (0.0025). warmup_steps: (0). betas: (0.9, 0.999). eps: (1e-8). weight_decay: (0).
        weight_lr_power: (2). maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend:
        see ``Optimizer``.

    Example:
        >>> opt = fastopt.ScheduleFreeAdamW(params, lr=1e-3, warmup_steps=100)
        >>> opt.step(grads)        # training
        >>> opt.eval()             # evaluate with x in the parameters
        >>> opt.train()            # and back

    State: ``z``, ``x``, ``exp_avg_sq``, ``max_lr``, ``weight_sum``, ``step``.
    References: Defazio et al., "The road less scheduled", NeurIPS 2024.
    """

    state_names = ("z", "x", "exp_avg_sq")
    adaptive = True

    def __init__(self, params, lr=0.0025, warmup_steps=0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 weight_lr_power=2.0, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, warmup_steps=warmup_steps, betas=betas, eps=eps, weight_decay=weight_decay,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        h = self._check_common(group, where)
        h["b1"], h["b2"] = betas(group["betas"], f"{where} betas")
        h["eps"] = real(f"epsilon value ({where} eps)", group["eps"], low=0.0)
        return h


class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-free SGD (optax.contrib.schedule_free_sgd; Defazio et al. 2024).

    As ``ScheduleFreeAdamW`` with the base step :math:`z_t = z_{t-1} - \gamma^z_t (g_t + \lambda y_{t-1})`.

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_1` ``b1`` (optax's name; facebookresearch's
    schedulefree calls it ``momentum``), :math:`\lambda` ``weight_decay``, :math:`r`
    ``weight_lr_power``. ``eval()``, ``train()`` and ``training`` as in ``ScheduleFreeAdamW``.

    .. warning::
       optax's conventions, as ``ScheduleFreeAdamW``'s; optax's default weight_decay None is 0 here.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1.0). warmup_steps: (0). b1: (0.9). weight_decay: (0). weight_lr_power: (2).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.ScheduleFreeSGD(params, lr=0.5, warmup_steps=50)

    State: ``z``, ``x``, ``max_lr``, ``weight_sum``, ``step``.
    References: Defazio et al., "The road less scheduled", NeurIPS 2024.
    """

    state_names = ("z", "x")

    def __init__(self, params, lr=1.0, warmup_steps=0, b1=0.9, weight_decay=0.0, weight_lr_power=2.0, *,
                 maximize=False, **kwargs):
        defaults = dict(lr=lr, warmup_steps=warmup_steps, b1=b1, weight_decay=weight_decay,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        h = self._check_common(group, where)
        h["b1"] = real(f"b1 ({where})", group["b1"], low=0.0, high=1.0, high_open=True)
        return h
