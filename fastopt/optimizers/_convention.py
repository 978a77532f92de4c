"""The ``convention`` option of SGD, Adam, AdamW, RMSprop and Adagrad: torch.optim's rules (the
default) or Keras 3's (``convention="keras"``), so that a Keras adapter can select the latter.

A hyperparameter whose default differs between the two has a :class:`ConventionDefault` as its
signature default: a float equal to (and printed as) torch's value, so the torch signature reads
and compares as before, that also carries Keras's value. ``__init__`` resolves it to a plain float
before anything else, so param groups (and state dicts) hold concrete values.
"""
from __future__ import annotations

CONVENTIONS = ("torch", "keras")


class ConventionDefault(float):
    """torch's default (the float itself) and Keras's (``.keras``) of one hyperparameter."""

    def __new__(cls, torch, keras):
        self = super().__new__(cls, torch)
        self.keras = keras
        return self

    def __reduce__(self):  # copy and pickle keep both values
        return (type(self), (float(self), self.keras))


def check_convention(value, where=None):
    """``value`` if it names a convention, else a ValueError naming the argument."""
    if not isinstance(value, str) or value not in CONVENTIONS:
        at = f" ({where})" if where else ""
        raise ValueError(f"convention must be 'torch' or 'keras'{at}, got {value!r}")
    return value


def resolve(convention, value):
    """A :class:`ConventionDefault` as the plain value of ``convention``; anything else as given."""
    if isinstance(value, ConventionDefault):
        return value.keras if convention == "keras" else float(value)
    return value


def keras_decay(h):
    """The kernels' ``(kwd, klr, kdecay)``: Keras's generic decoupled weight decay ``p = p - p * kwd * klr``,
    applied before the update (``BaseOptimizer._apply_weight_decay``) when ``kdecay``; off for torch, and
    for a zero decay (tested in double, as Keras skips ``weight_decay=None``)."""
    if h["convention"] == "keras" and h["weight_decay"] != 0:
        return h["weight_decay"], h["lr"], True
    return 0.0, 0.0, False
