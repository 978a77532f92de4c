"""What every fastopt schedule shares: the base class ``LearningRateSchedule`` (``schedule(step)``,
``get_config()``/``from_config``, equality and repr by config), the argument checks the schedules
use (``_step``: a non-negative step as a float; ``_positive_int``), and ``serialize``/
``deserialize`` in Keras's ``{"class_name", "config"}`` layout, over ``_CLASSES``, the schedule
classes by name (filled by ``fastopt.schedules`` once every kind is defined)."""
from __future__ import annotations


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


#: the schedule classes by name, for ``deserialize``: ``fastopt.schedules`` adds every one
_CLASSES = {}


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
