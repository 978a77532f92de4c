"""Loss scaling for mixed-precision training, with the unscale fused into the optimizer step."""
from __future__ import annotations

import math

import numpy as np

from fastopt._validate import flag, real


class LossScaler:
    r"""Scales the loss up so small gradients survive low precision, then unscales in the step.

    Dynamic (the default) follows torch's ``GradScaler``: a step whose gradients hold an inf
    or NaN is skipped and the scale shrinks; after ``growth_interval`` good steps in a row it
    grows.

    .. math::
        \text{found\_inf}: s \leftarrow s \cdot \text{backoff}, \quad
        \text{else every growth\_interval steps}: s \leftarrow s \cdot \text{growth}

    ``dynamic=False`` keeps ``init_scale`` fixed (steps with non-finite gradients are still
    skipped). The unscale ``1 / s`` joins the kernel's ``grad_scale``, and the finite check is
    the optimizer's one reduction pass (the one ``global_clipnorm`` makes anyway): no pass over
    the gradients of its own. A skipped step leaves parameters, states, EMA and step counts
    untouched and counts in ``optimizer.skipped_steps``. The scale is kept in float32, as torch
    keeps it.

    Args:
        init_scale: the first scale (2**16). growth_factor: 2.0. backoff_factor: 0.5.
        growth_interval: good steps between growths (2000). dynamic: adjust the scale (True).

    Example:
        >>> scaler = fastopt.LossScaler()
        >>> grads = backward(scaler.scale(loss))     # gradients of the scaled loss
        >>> scaler.step(opt, grads)                  # unscale + check + update, one pass each
        >>> scaler.update()
    """

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 dynamic=True):
        self._scale = float(np.float32(real("init_scale", init_scale, low=0.0, low_open=True)))
        if not math.isfinite(self._scale):
            raise ValueError(f"Invalid init_scale value: {init_scale} (must be finite in float32)")
        self.growth_factor = real("growth_factor", growth_factor, low=1.0, low_open=True)
        self.backoff_factor = real("backoff_factor", backoff_factor, low=0.0, low_open=True, high=1.0,
                                   high_open=True)
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, (int, np.integer)) \
                or growth_interval < 1:
            raise ValueError(f"growth_interval must be a whole number >= 1, got {growth_interval!r}")
        self.growth_interval = int(growth_interval)
        self.dynamic = flag("dynamic", dynamic)
        self._growth_tracker = 0
        self._found_inf = None  # the last step's verdict, until update() consumes it

    def get_scale(self):
        """The current scale (a float)."""
        return self._scale

    def scale(self, x):
        """``x * scale``: a loss (float or array) scaled before the backward pass."""
        return x * self._scale

    def step(self, optimizer, grads):
        """Unscale ``grads`` and step ``optimizer`` unless they hold an inf or NaN (then skip).

        ``grads`` is structured as for ``optimizer.step``. Returns True if the step was applied.
        """
        applied = optimizer._scaled_step(grads, 1.0 / self._scale, True)
        self._found_inf = not applied
        return applied

    def update(self, new_scale=None):
        """Adjust the scale after a step (torch's ``GradScaler.update``), or set ``new_scale``."""
        if new_scale is not None:
            value = float(np.float32(real("new_scale", new_scale, low=0.0, low_open=True)))
            self._scale = value
        elif self.dynamic and self._found_inf is not None:
            scale = np.float32(self._scale)
            if self._found_inf:
                self._scale = float(scale * np.float32(self.backoff_factor))
                self._growth_tracker = 0
            else:
                successful = self._growth_tracker + 1
                if successful == self.growth_interval:
                    grown = scale * np.float32(self.growth_factor)
                    if np.isfinite(grown):
                        self._scale = float(grown)
                    self._growth_tracker = 0
                else:
                    self._growth_tracker = successful
        self._found_inf = None

    def state_dict(self):
        """torch GradScaler's keys: scale, growth_factor, backoff_factor, growth_interval,
        _growth_tracker (plus ``dynamic``)."""
        return {"scale": self._scale, "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "_growth_tracker": self._growth_tracker, "dynamic": self.dynamic}

    def load_state_dict(self, state):
        """Restore ``state_dict()`` (or a torch GradScaler's); checked before anything changes."""
        if not isinstance(state, dict) or "scale" not in state:
            raise ValueError("LossScaler state must be a dict with a 'scale'")
        fresh = LossScaler(init_scale=float(state["scale"]),
                           growth_factor=state.get("growth_factor", self.growth_factor),
                           backoff_factor=state.get("backoff_factor", self.backoff_factor),
                           growth_interval=state.get("growth_interval", self.growth_interval),
                           dynamic=state.get("dynamic", self.dynamic))
        tracker = state.get("_growth_tracker", 0)
        if isinstance(tracker, bool) or not isinstance(tracker, (int, np.integer)) or tracker < 0:
            raise ValueError(f"LossScaler state '_growth_tracker' must be a count >= 0, got {tracker!r}")
        fresh._growth_tracker = int(tracker)
        self.__dict__.update(fresh.__dict__)

    def __repr__(self):
        kind = "dynamic" if self.dynamic else "static"
        return f"LossScaler({kind}, scale={self._scale:g})"
