"""Learning-rate schedules: Keras's names and formulas, and torch-style step schedules.

A schedule is a callable of the step (0 for the first update, as Keras's ``iterations``) that
returns the learning rate as a Python float, computed in double. ``get_config()`` and
``schedules.deserialize(config)`` round-trip it exactly (for checkpoints).

Keras (``keras.optimizers.schedules``): ``ExponentialDecay``, ``PiecewiseConstantDecay``,
``PolynomialDecay``, ``InverseTimeDecay``, ``CosineDecay`` (with linear warm-up),
``CosineDecayRestarts``. torch-style: ``StepLR``, ``MultiStepLR``, ``LinearWarmup`` (``LinearLR``),
``OneCycleLR`` (``torch.optim.lr_scheduler``'s learning rates as functions of the step) and
``ReduceLROnPlateau`` (driven by ``report(metric)``).
"""
from __future__ import annotations

import bisect
import math

from fastopt._validate import real

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "StepLR", "MultiStepLR",
           "LinearWarmup", "OneCycleLR", "ReduceLROnPlateau", "serialize", "deserialize"]


class LearningRateSchedule:
    """Base class: ``schedule(step) -> lr`` and ``get_config()``."""

    def __call__(self, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _step(step):
    if isinstance(step, bool) or not isinstance(step, (int, float)) or step != step or step < 0:
        raise ValueError(f"step must be a non-negative number, got {step!r}")
    return float(step)


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class _RateDecay(LearningRateSchedule):
    """Shared parameters of ExponentialDecay and InverseTimeDecay (as in Keras)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = real("initial_learning_rate", initial_learning_rate, low=0.0)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.decay_rate = real("decay_rate", decay_rate, low=0.0)
        self.staircase = bool(staircase)

    def _progress(self, step):
        """``step / decay_steps``, floored with staircase."""
        p = _step(step) / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate, decay_steps=self.decay_steps,
                    decay_rate=self.decay_rate, staircase=self.staircase)


class ExponentialDecay(_RateDecay):
    r"""Keras ``ExponentialDecay``: :math:`\gamma_0 \cdot r^{s / T}` (``floor(s / T)`` with staircase).

    Symbols: :math:`\gamma_0` ``initial_learning_rate``, :math:`r` ``decay_rate``,
    :math:`T` ``decay_steps``, :math:`s` the step.

    Example:
        >>> ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96, staircase=True)(2500)
        0.09216
    """

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """Keras ``PiecewiseConstantDecay``: ``values[0]`` while step <= ``boundaries[0]``,
    ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after.

    Example:
        >>> PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])(150)
        0.5
    """

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), [real(f"values[{i}]", v) for i, v in enumerate(values)]
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values must have one more entry than boundaries: got {len(values)} values "
                             f"for {len(boundaries)} boundaries")
        if any(b >= a for a, b in zip(boundaries[1:], boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries}")
        self.boundaries, self.values = boundaries, values

    def __call__(self, step):
        return self.values[bisect.bisect_left(self.boundaries, _step(step))]

    def get_config(self):
        return dict(boundaries=list(self.boundaries), values=list(self.values))


class PolynomialDecay(LearningRateSchedule):
    r"""Keras ``PolynomialDecay``:
    :math:`(\gamma_0 - \gamma_e)(1 - \min(s, T)/T)^p + \gamma_e`; with ``cycle`` the horizon
    :math:`T` grows to the next multiple of ``decay_steps`` past the step instead.

    Example:
        >>> PolynomialDecay(0.1, 1000, end_learning_rate=0.01, power=2.0)(500)
        0.0325
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False):
        self.initial_learning_rate = real("initial_learning_rate", initial_learning_rate, low=0.0)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.end_learning_rate = real("end_learning_rate", end_learning_rate, low=0.0)
        self.power = real("power", power)
        self.cycle = bool(cycle)

    def __call__(self, step):
        s, horizon = _step(step), float(self.decay_steps)
        if self.cycle:
            horizon *= 1.0 if s == 0 else math.ceil(s / horizon)
        else:
            s = min(s, horizon)
        frac = s / horizon
        return (self.initial_learning_rate - self.end_learning_rate) * (1 - frac) ** self.power + self.end_learning_rate

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate, decay_steps=self.decay_steps,
                    end_learning_rate=self.end_learning_rate, power=self.power, cycle=self.cycle)


class InverseTimeDecay(_RateDecay):
    r"""Keras ``InverseTimeDecay``: :math:`\gamma_0 / (1 + r \cdot s/T)` (``floor`` with staircase).

    Example:
        >>> InverseTimeDecay(0.1, decay_steps=1, decay_rate=0.5)(2)
        0.05
    """

    def __call__(self, step):
        return self.initial_learning_rate / (1 + self.decay_rate * self._progress(step))


def _cosine(lr, step, decay_steps, alpha):
    """Keras's cosine decay from ``lr`` over ``decay_steps`` (step clamped), floor ``alpha * lr``."""
    frac = min(step, decay_steps) / decay_steps
    return lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * frac)) + alpha)


class CosineDecay(LearningRateSchedule):
    r"""Keras ``CosineDecay`` with optional linear warm-up.

    Without warm-up: :math:`\gamma_0((1-\alpha)\tfrac12(1+\cos(\pi \min(s,T)/T)) + \alpha)`.
    With ``warmup_target``: linear from :math:`\gamma_0` to the target over ``warmup_steps``, then
    the cosine decay from the target, its step counted from the end of the warm-up.

    Example:
        >>> CosineDecay(0.0, decay_steps=1000, warmup_target=0.1, warmup_steps=100)(50)
        0.05
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = real("initial_learning_rate", initial_learning_rate, low=0.0)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.alpha = real("alpha", alpha, low=0.0, high=1.0)
        self.warmup_target = None if warmup_target is None else real("warmup_target", warmup_target, low=0.0)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return _cosine(self.initial_learning_rate, s, self.decay_steps, self.alpha)
        if s < self.warmup_steps:
            frac = s / self.warmup_steps
            return (self.warmup_target - self.initial_learning_rate) * frac + self.initial_learning_rate
        return _cosine(self.warmup_target, s - self.warmup_steps, self.decay_steps, self.alpha)

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate, decay_steps=self.decay_steps,
                    alpha=self.alpha, warmup_target=self.warmup_target, warmup_steps=self.warmup_steps)


class CosineDecayRestarts(LearningRateSchedule):
    r"""Keras ``CosineDecayRestarts`` (SGDR, Loshchilov & Hutter 2017).

    Period ``i`` lasts ``first_decay_steps * t_mul**i`` steps and starts at
    ``initial_learning_rate * m_mul**i``; within a period the rate follows the cosine decay to
    ``alpha`` times its start.

    Example:
        >>> CosineDecayRestarts(0.1, first_decay_steps=100)(100)  # a restart
        0.1
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        self.initial_learning_rate = real("initial_learning_rate", initial_learning_rate, low=0.0)
        self.first_decay_steps = _positive_int("first_decay_steps", first_decay_steps)
        self.t_mul = real("t_mul", t_mul, low=0.0, low_open=True)
        self.m_mul = real("m_mul", m_mul, low=0.0)
        self.alpha = real("alpha", alpha, low=0.0, high=1.0)

    def __call__(self, step):
        frac = _step(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            i_restart = math.floor(frac)
            frac -= i_restart
        else:
            i_restart = math.floor(math.log(1.0 - frac * (1.0 - self.t_mul)) / math.log(self.t_mul))
            sum_r = (1.0 - self.t_mul ** i_restart) / (1.0 - self.t_mul)
            frac = (frac - sum_r) / self.t_mul ** i_restart
        cosine = 0.5 * self.m_mul ** i_restart * (1.0 + math.cos(math.pi * frac))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate, first_decay_steps=self.first_decay_steps,
                    t_mul=self.t_mul, m_mul=self.m_mul, alpha=self.alpha)


class StepLR(LearningRateSchedule):
    """torch ``StepLR`` as a function of the step: ``lr * gamma ** (step // step_size)``.

    Example:
        >>> StepLR(0.1, step_size=30, gamma=0.1)(65)
        0.001...
    """

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = real("lr", lr, low=0.0)
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = real("gamma", gamma, low=0.0)

    def __call__(self, step):
        return self.lr * self.gamma ** (int(_step(step)) // self.step_size)

    def get_config(self):
        return dict(lr=self.lr, step_size=self.step_size, gamma=self.gamma)


class MultiStepLR(LearningRateSchedule):
    """torch ``MultiStepLR`` as a function of the step: ``lr * gamma ** (milestones passed)``.

    Example:
        >>> MultiStepLR(0.1, milestones=[30, 80], gamma=0.1)(50)
        0.01...
    """

    def __init__(self, lr, milestones, gamma=0.1):
        self.lr = real("lr", lr, low=0.0)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = real("gamma", gamma, low=0.0)

    def __call__(self, step):
        return self.lr * self.gamma ** bisect.bisect_right(self.milestones, int(_step(step)))

    def get_config(self):
        return dict(lr=self.lr, milestones=list(self.milestones), gamma=self.gamma)


class LinearWarmup(LearningRateSchedule):
    r"""Linear warm-up from ``start_factor * lr`` to ``lr`` over ``warmup_steps``, then ``lr``, or
    the schedule ``after`` counted from the end of the warm-up.

    Without ``after`` this is torch's ``LinearLR(start_factor, end_factor=1, total_iters)``:
    :math:`\gamma (f_0 + (1 - f_0) \min(s, W) / W)`.

    Example:
        >>> LinearWarmup(0.1, warmup_steps=10, start_factor=0.0)(5)
        0.05
    """

    def __init__(self, lr, warmup_steps, start_factor=0.0, after=None):
        self.lr = real("lr", lr, low=0.0)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        self.start_factor = real("start_factor", start_factor, low=0.0, high=1.0)
        if after is not None and not isinstance(after, LearningRateSchedule):
            raise TypeError(f"after must be a fastopt schedule, got {type(after).__name__}")
        self.after = after

    def __call__(self, step):
        s = _step(step)
        if s < self.warmup_steps or self.after is None:
            frac = min(s, self.warmup_steps) / self.warmup_steps
            return self.lr * (self.start_factor + (1.0 - self.start_factor) * frac)
        return self.after(s - self.warmup_steps)

    def get_config(self):
        return dict(lr=self.lr, warmup_steps=self.warmup_steps, start_factor=self.start_factor,
                    after=None if self.after is None else serialize(self.after))

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("after") is not None:
            config["after"] = deserialize(config["after"])
        return cls(**config)


class OneCycleLR(LearningRateSchedule):
    """torch's ``OneCycleLR`` learning rate as a function of the step (Smith & Topin 2017).

    From ``max_lr / div_factor`` up to ``max_lr`` over ``pct_start`` of ``total_steps``, then down to
    ``initial / final_div_factor`` (``three_phase``: back to the initial rate first), annealed by
    cosine or linearly. Steps past ``total_steps - 1`` raise, as torch does.

    Example:
        >>> OneCycleLR(1.0, total_steps=100)(29)  # the peak
        1.0
    """

    def __init__(self, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        self.max_lr = real("max_lr", max_lr, low=0.0)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.pct_start = real("pct_start", pct_start, low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.div_factor = real("div_factor", div_factor, low=0.0, low_open=True)
        self.final_div_factor = real("final_div_factor", final_div_factor, low=0.0, low_open=True)
        self.three_phase = bool(three_phase)
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        up = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            self._phases = [(up, initial, self.max_lr), (float(2 * self.pct_start * self.total_steps) - 2,
                                                         self.max_lr, initial),
                            (self.total_steps - 1, initial, low)]
        else:
            self._phases = [(up, initial, self.max_lr), (self.total_steps - 1, self.max_lr, low)]

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def __call__(self, step):
        s = _step(step)
        if s > self.total_steps - 1:
            raise ValueError(f"OneCycleLR was built for {self.total_steps} steps; step {step} is past the end")
        start = 0.0
        for i, (end, lr0, lr1) in enumerate(self._phases):
            if s <= end or i == len(self._phases) - 1:
                return self._anneal(lr0, lr1, (s - start) / (end - start))
            start = end

    def get_config(self):
        return dict(max_lr=self.max_lr, total_steps=self.total_steps, pct_start=self.pct_start,
                    anneal_strategy=self.anneal_strategy, div_factor=self.div_factor,
                    final_div_factor=self.final_div_factor, three_phase=self.three_phase)


class ReduceLROnPlateau(LearningRateSchedule):
    """torch's ``ReduceLROnPlateau``: multiply the rate by ``factor`` when ``report(metric)`` has not
    improved for more than ``patience`` reports (then wait ``cooldown`` reports).

    Unlike the other schedules it depends on the metrics reported, not on the step: its config
    holds that state (best, bad reports, cooldown, current rate), so checkpoints resume it.

    Example:
        >>> sched = ReduceLROnPlateau(0.1, patience=0)
        >>> opt = fastopt.SGD(params, lr=sched)
        >>> sched.report(val_loss)      # once per epoch
    """

    def __init__(self, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8, *, best=None, num_bad_reports=0, cooldown_counter=0,
                 current_lr=None):
        self.initial_lr = real("lr", lr, low=0.0)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = real("factor", factor, low=0.0, high=1.0, high_open=True)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative integer, got {patience!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be a non-negative integer, got {cooldown!r}")
        self.patience, self.cooldown = patience, cooldown
        self.threshold = real("threshold", threshold, low=0.0)
        self.min_lr = real("min_lr", min_lr, low=0.0)
        self.eps = real("eps", eps, low=0.0)
        self.best = (math.inf if mode == "min" else -math.inf) if best is None else float(best)
        self.num_bad_reports, self.cooldown_counter = int(num_bad_reports), int(cooldown_counter)
        self.current_lr = self.initial_lr if current_lr is None else float(current_lr)

    def _better(self, a):
        if self.mode == "min":
            return a < (self.best * (1.0 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold)
        return a > (self.best * (self.threshold + 1.0) if self.threshold_mode == "rel" else self.best + self.threshold)

    def report(self, metric):
        """Record this epoch's metric; lowers the rate when it has plateaued. Returns the rate."""
        current = float(metric)
        if self._better(current):
            self.best, self.num_bad_reports = current, 0
        else:
            self.num_bad_reports += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_reports = 0
        if self.num_bad_reports > self.patience:
            new_lr = max(self.current_lr * self.factor, self.min_lr)
            if self.current_lr - new_lr > self.eps:
                self.current_lr = new_lr
            self.cooldown_counter, self.num_bad_reports = self.cooldown, 0
        return self.current_lr

    step = report  # torch's name

    def __call__(self, step):
        _step(step)
        return self.current_lr

    def get_config(self):
        return dict(lr=self.initial_lr, mode=self.mode, factor=self.factor, patience=self.patience,
                    threshold=self.threshold, threshold_mode=self.threshold_mode, cooldown=self.cooldown,
                    min_lr=self.min_lr, eps=self.eps, best=self.best, num_bad_reports=self.num_bad_reports,
                    cooldown_counter=self.cooldown_counter, current_lr=self.current_lr)


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                          InverseTimeDecay, CosineDecay, CosineDecayRestarts, StepLR,
                                          MultiStepLR, LinearWarmup, OneCycleLR, ReduceLROnPlateau)}


def serialize(schedule):
    """``{"class_name": ..., "config": ...}`` (Keras's layout) for a schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config):
    """The schedule ``serialize`` described; unknown class names raise ``ValueError``."""
    try:
        cls = _CLASSES[config["class_name"]]
    except (KeyError, TypeError):
        raise ValueError(f"not a serialized fastopt schedule: {config!r}") from None
    return cls.from_config(dict(config["config"]))
