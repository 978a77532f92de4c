"""Naive NumPy reference implementations: the readable spec, the test oracle, the benchmark baseline.

Every update rule here is written straight from the formulas documented by its source (``torch.optim``, Keras 3,
optax), in the order of operations of the source's implementation (torch's single-tensor, ``foreach=False``,
one), as plain whole-array NumPy expressions with all their temporaries, the way a user would write them.
Nothing here is fast, and nothing is meant to be: the fused kernels in ``fastopt._kernels`` are tested against
these functions, and the benchmarks report the speed-up over them.

Modules, one per family:

- ``torch_foundation``: torch.optim's SGD, Adam, AdamW, RMSprop, Adagrad (``sgd_step`` ...);
- ``torch_family``: the rest of torch.optim's rules (Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor);
- ``keras_family``: Keras 3's own optimizers (Ftrl, Lion, Lamb, Nadam, Adafactor);
- ``optax_family``: optax's (LARS, Yogi, AdaBelief, Adan, schedule-free AdamW and SGD);
- ``keras_conventions``: Keras's versions of the foundation's rules (``convention="keras"``);
- ``muon``: Muon (2-D parameters only, so not in ``STEPS``, whose rules take any shape);
- ``clip``: ``clip_grad_norm_``, ``clip_grad_value_`` (torch) and ``keras_clip`` (Keras's keywords);
- ``oracle``: the tables ``STEPS``, ``STATE_NAMES``, ``SCALAR_STATE_NAMES`` of every rule by name, and
  ``Reference``, the optimizer over a list of arrays that runs them;
- ``ops`` and ``state``: the helpers they share (torch's lerp, float64 norms; state creation, step counts);
- ``storage``: low-precision storage (bfloat16 as ``ml_dtypes.bfloat16``, float16): nearest-even and stochastic
  rounding from float32, the exact way back, and the counter-based random bits (``random_bits``, ``step_key``).

Conventions (shared with the rest of fastopt):

- Hyperparameter names, state names and defaults are torch's (``lr``, ``betas``, ``eps``, ``weight_decay``,
  ``momentum``, ``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``, ``step`` ...).
- ``*_step(p, g, state, **hyper)`` updates ``p`` and the arrays in the ``state`` dict IN PLACE, creating missing
  state entries as torch does on its first step; ``g`` is never modified. ``state["step"]`` is a Python int.
- float32 and float64 arrays of any shape keep their dtype: per-step scalars (bias corrections, step sizes) are
  Python floats computed in double precision, which NumPy 2 casts to the array's dtype (NEP 50).
- Moving averages that torch computes with ``lerp`` (Adam's ``exp_avg``, centered RMSprop's ``grad_avg``) use
  lerp's form ``m + w * (g - m)`` (``g - (g - m) * (1 - w)`` for ``w >= 0.5``); torch's CPU lerp fuses that
  multiply-add into one rounding (FMA), which the kernels do not, so results differ from torch by an ulp at
  most per step. ``addcdiv`` is written as torch's CPU kernel evaluates it: ``p + (value * x) / d``.
- Clipping follows torch for the functional helpers (``clip_grad_norm_``, ``clip_grad_value_``; norms accumulate
  in float64) and Keras 3 for the optimizer keywords (``keras_clip``: ``clipnorm``, ``global_clipnorm``,
  ``clipvalue``).

The Keras and optax rules (``keras_family``, ``optax_family``) follow the same conventions:

- ``name_step(p, g, state, **hyper)`` updates ``p`` and the arrays in the ``state`` dict IN PLACE, creating missing
  state entries on the first step; ``g`` is never modified; ``state["step"]`` is a Python int counting the steps
  taken (1 on the first step). Scalar state that the source keeps as a 0-d tensor (Keras Nadam's ``u_product``,
  schedule-free's ``weight_sum`` and ``max_lr``) is kept as a Python float (double precision).
- float32 and float64 arrays of any shape keep their dtype: per-step scalars (bias corrections, step sizes, trust
  ratios) are Python floats computed in double precision, which NumPy 2 casts to the array's dtype (NEP 50).
  Per-array reductions (norms, RMS, means of whole arrays) accumulate in float64 and come back as Python floats;
  row/column means (Adafactor) stay in the array's dtype, as the sources compute them.
- Hyperparameter names are torch's where the concept is shared (``lr`` for ``learning_rate``, ``betas`` for
  ``beta_1, beta_2`` or ``b1, b2[, b3]``, ``eps`` for ``epsilon``, ``weight_decay``, ``momentum``, ``nesterov``)
  and the source's own otherwise; every default is the source's (optax has no default learning rate for
  ``lars``, ``yogi``, ``adabelief`` and ``adan``: ``lr=1e-3`` here). ``maximize=True`` negates the gradient first
  (neither source has it: it equals passing ``-g``).
- Operations are written in the order and grouping of the source, so that float64 results agree with it to a few
  ulps per step: Keras's moving averages are ``m + (g - m) * (1 - b)`` (Lamb, Nadam) or ``m * b + g * (1 - b)``
  (Lion), optax's are ``(1 - b) * g + b * m``.
"""
from __future__ import annotations

from fastopt.reference.clip import clip_grad_norm_, clip_grad_value_, keras_clip
from fastopt.reference.muon import Muon, muon_step
from fastopt.reference.ops import _lerp, _vector_norm  # noqa: F401  (the old module's private helpers)
from fastopt.reference.oracle import SCALAR_STATE_NAMES, STATE_NAMES, STEPS, Reference, _merge_sources  # noqa: F401
from fastopt.reference.state import _next_step, _zeros_state  # noqa: F401
from fastopt.reference.storage import (from_bf16, from_f16, random_bits, step_key, to_bf16_nearest,
                                       to_bf16_stochastic, to_f16_nearest, to_f16_stochastic)
from fastopt.reference.torch_family import (_rms, adadelta_step, adafactor_step, adamax_step, asgd_step,  # noqa: F401
                                            nadam_step, radam_step, rprop_step)
from fastopt.reference.torch_foundation import adagrad_step, adam_step, adamw_step, rmsprop_step, sgd_step

__all__ = ["sgd_step", "adam_step", "adamw_step", "rmsprop_step", "adagrad_step", "adadelta_step", "adamax_step",
           "nadam_step", "radam_step", "rprop_step", "asgd_step", "adafactor_step", "STEPS", "STATE_NAMES",
           "SCALAR_STATE_NAMES",
           "clip_grad_norm_", "clip_grad_value_", "keras_clip", "Reference", "muon_step", "Muon",
           "to_bf16_nearest", "to_bf16_stochastic", "to_f16_nearest", "to_f16_stochastic", "from_bf16", "from_f16",
           "random_bits", "step_key"]
