"""Schedules in the style of ``torch.optim.lr_scheduler``: ``StepLR``, ``MultiStepLR``,
``LinearWarmup`` (torch's ``LinearLR``, optionally followed by another schedule), ``OneCycleLR``
(each a learning rate as a function of the step) and ``ReduceLROnPlateau``, driven by
``report(metric)`` and keeping that state in its config."""
from __future__ import annotations

import bisect
import math

from fastopt._validate import real
from fastopt.schedules._base import LearningRateSchedule, _positive_int, _step, deserialize, serialize


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
