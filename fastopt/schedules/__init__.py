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

# The package: _base (the base class, argument checks, serialize/deserialize), _keras (Keras's
# schedules), _torch_style (torch.optim.lr_scheduler's).
# bisect, math, real and the underscored helpers (noqa: F401) are imported only so that every name
# the single module fastopt/schedules.py had stays reachable as fastopt.schedules.<name>
import bisect  # noqa: F401
import math  # noqa: F401

from fastopt._validate import real  # noqa: F401
from fastopt.schedules._base import _CLASSES, LearningRateSchedule, deserialize, serialize
from fastopt.schedules._base import _positive_int, _step  # noqa: F401
from fastopt.schedules._keras import (CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay,
                                      PiecewiseConstantDecay, PolynomialDecay)
from fastopt.schedules._keras import _cosine, _RateDecay  # noqa: F401
from fastopt.schedules._torch_style import LinearWarmup, MultiStepLR, OneCycleLR, ReduceLROnPlateau, StepLR

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "StepLR", "MultiStepLR",
           "LinearWarmup", "OneCycleLR", "ReduceLROnPlateau", "serialize", "deserialize"]

_CLASSES.update({cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                               InverseTimeDecay, CosineDecay, CosineDecayRestarts, StepLR,
                                               MultiStepLR, LinearWarmup, OneCycleLR, ReduceLROnPlateau)})
