"""Keras's schedules (``keras.optimizers.schedules``), with Keras's names, arguments and formulas:
``ExponentialDecay`` and ``InverseTimeDecay`` (on their shared ``_RateDecay``),
``PiecewiseConstantDecay``, ``PolynomialDecay``, ``CosineDecay`` (with linear warm-up) and
``CosineDecayRestarts`` (SGDR), with ``_cosine``, the cosine decay the two cosine schedules share."""
from __future__ import annotations

import bisect
import math

from fastopt._validate import real
from fastopt.schedules._base import LearningRateSchedule, _positive_int, _step


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
