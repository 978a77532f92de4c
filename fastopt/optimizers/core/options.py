"""The training-loop options as properties: an assignment is validated like the keyword, and
the step's single "any option set?" test (``_options``) stays current."""
from __future__ import annotations

import math

from fastopt._validate import count_or_none, flag, positive_or_none, real


class TrainingLoopOptions:
    """Clipping, weight EMA, gradient accumulation, the non-finite check and flush-to-zero."""

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
