"""Naive NumPy references of Keras 3's SGD, Adam, AdamW, RMSprop and Adagrad: the oracle for the foundation's
kernels under ``convention="keras"``.

Same conventions as :mod:`fastopt.reference.keras_family` (read the :mod:`fastopt.reference` docstring
first): ``name_step(p, g, state, **hyper)`` updates ``p`` and the ``state`` arrays in
place, creating them on the first step; ``g`` is never modified; ``state["step"]`` is a Python int. float32 and
float64 arrays keep their dtype; per-step scalars (Adam's ``alpha``) are Python floats computed in double, which
NumPy 2 casts to the arrays' dtype. Hyperparameter names are torch's (``lr`` for ``learning_rate``, ``betas`` for
``beta_1, beta_2``, ``eps`` for ``epsilon``, ``alpha`` for RMSprop's ``rho``), every default is Keras 3.15's, and
``maximize=True`` negates the gradient first. Every ``weight_decay`` is Keras's generic decoupled decay applied
BEFORE the update (``p = p - p * wd * lr``, ``BaseOptimizer._apply_weight_decay``; 0 is off, as Keras's None).

State names are torch's, so that state dicts look alike, but the meaning can differ: Keras's SGD velocity
``momentum_buffer`` includes the learning rate (``momentum * b - lr * g``, negative for a positive gradient), and
so does RMSprop's ``momentum_buffer`` (``momentum * b + lr * g / d``); ``exp_avg``/``exp_avg_sq``/
``max_exp_avg_sq`` are Keras's ``momentum``/``velocity``/``velocity_hat``, ``square_avg``/``grad_avg`` its
``velocity``/``average_gradient``, ``sum`` its ``accumulator`` (starting at ``initial_accumulator_value``).

Operations follow the order and grouping of the generic implementations in ``keras/src/optimizers/*.py``. The
torch backend (``KERAS_BACKEND=torch``) overrides them with ``torch._foreach_*`` code in
``keras/src/backend/torch/optimizers/torch_*.py`` that computes the same rules in another order (Adam's and
RMSprop's ``m * b + (1 - b) * g``, SGD Nesterov's ``(p - lr * g) + momentum * b``, centered RMSprop's
``(v + eps) - a * a``, decay ``p * (1 - wd * lr)``), and torch's CPU ``add(..., alpha=)`` fuses its multiply-add
(FMA): results agree with Keras on torch to a few ulps per step, not bit for bit.

.. warning::
   Keras 3.15 on the torch backend computes float64 variables entirely in float64 only under
   ``keras.config.set_floatx("float64")``: with the default float32 floatx it stores a float ``learning_rate`` in
   a float32 Variable, which every rule here reads (SGD's ``alpha=-learning_rate``, Adam's ``alpha``, RMSprop's
   and Adagrad's ``g * lr``), and the weight decay's factor ``1 - wd * lr`` becomes a float32 tensor (about
   1e-5 relative error in a decay rate of 1e-4). The other hyperparameters reach
   ``torch._foreach_*`` as Python floats and stay exact; Adam's bias corrections are computed by ``ops`` in the
   variables' dtype (float32 for float32 variables, where the oracle's are double). The tests run float64 with
   floatx float64.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.keras_family import _keras_weight_decay
from fastopt.reference.state import _next_step, _zeros_state

__all__ = ["keras_sgd_step", "keras_adam_step", "keras_adamw_step", "keras_rmsprop_step", "keras_adagrad_step",
           "STEPS", "STATE_NAMES"]


def keras_sgd_step(p, g, state, *, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, maximize=False):
    """One SGD step as Keras computes it (keras.optimizers.SGD), in place.

    p = p - p * weight_decay * lr                       (Keras's generic decay, first)
    momentum != 0:  b = b * momentum - g * lr            (b starts at 0; the learning rate is inside b)
                    p = p + (b * momentum - g * lr) if nesterov else p + b
    momentum == 0:  p = p - g * lr                       (nesterov has no effect)

    State: ``momentum_buffer`` (b, Keras's ``momentums``; only when momentum != 0). No ``step``, as torch's SGD.
    Source: keras/src/optimizers/sgd.py.
    """
    lr, momentum, weight_decay = float(lr), float(momentum), float(weight_decay)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    if momentum != 0:
        m = _zeros_state(state, "momentum_buffer", p)
        m[...] = m * momentum - grad * lr
        if nesterov:
            p += m * momentum - grad * lr
        else:
            p += m
    else:
        p -= grad * lr


def keras_adam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, amsgrad=False,
                    maximize=False):
    """One Adam step as Keras computes it (keras.optimizers.Adam), in place.

    t = t + 1;  p = p - p * weight_decay * lr            (Keras's generic decay, first)
    alpha = lr * sqrt(1 - b2**t) / (1 - b1**t)           (in double)
    m = m + (g - m) * (1 - b1);  v = v + (g * g - v) * (1 - b2)
    v_hat = vmax = maximum(vmax, v) if amsgrad else v
    p = p - (m * alpha) / (sqrt(v_hat) + eps)            (Keras's "epsilon hat": eps on the uncorrected sqrt(v))

    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (vmax, amsgrad); Keras's momentums,
    velocities, velocity_hats.
    Source: keras/src/optimizers/adam.py.
    """
    lr, eps, b1, b2 = float(lr), float(eps), float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    v = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    if amsgrad:
        vmax = _zeros_state(state, "max_exp_avg_sq", p)
        np.maximum(vmax, v, out=vmax)  # NaN propagates, as ops.maximum
        v = vmax
    p -= (m * alpha) / (np.sqrt(v) + eps)


def keras_adamw_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.004, amsgrad=False,
                     maximize=False):
    """One AdamW step as Keras computes it (keras.optimizers.AdamW): ``keras_adam_step`` with Keras's default
    ``weight_decay=0.004`` (Keras's AdamW is its Adam with the generic decoupled decay required).

    Source: keras/src/optimizers/adamw.py.
    """
    keras_adam_step(p, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                    maximize=maximize)


def keras_rmsprop_step(p, g, state, *, lr=1e-3, alpha=0.9, eps=1e-7, weight_decay=0.0, momentum=0.0,
                       centered=False, maximize=False):
    """One RMSprop step as Keras computes it (keras.optimizers.RMSprop), in place.

    p = p - p * weight_decay * lr                       (Keras's generic decay, first)
    v = alpha * v + (1 - alpha) * (g * g)
    a = alpha * a + (1 - alpha) * g;  d = sqrt(v - a * a + eps)      (centered; eps inside the root)
    d = sqrt(v + eps)                                                  (otherwise)
    inc = (lr * g) / d
    b = momentum * b + inc;  p = p - b                   (momentum > 0; the learning rate is inside b)
    p = p - inc                                          (otherwise)

    Symbols: alpha is Keras's ``rho``; v = ``square_avg`` (Keras's velocities), a = ``grad_avg`` (centered, its
    average_gradients), b = ``momentum_buffer`` (momentum > 0, its momentums), all starting at 0.

    State: ``step``, ``square_avg``, ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered).
    Source: keras/src/optimizers/rmsprop.py.
    """
    lr, rho, eps, momentum = float(lr), float(alpha), float(eps), float(momentum)
    _next_step(state)
    v = _zeros_state(state, "square_avg", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    v[...] = rho * v + (1 - rho) * (grad * grad)
    if centered:
        a = _zeros_state(state, "grad_avg", p)
        a[...] = rho * a + (1 - rho) * grad
        denominator = v - a * a + eps
    else:
        denominator = v + eps
    increment = (lr * grad) / np.sqrt(denominator)
    if momentum > 0:
        b = _zeros_state(state, "momentum_buffer", p)
        b[...] = momentum * b + increment
        p -= b
    else:
        p -= increment


def keras_adagrad_step(p, g, state, *, lr=1e-3, initial_accumulator_value=0.1, eps=1e-7, weight_decay=0.0,
                       maximize=False):
    """One Adagrad step as Keras computes it (keras.optimizers.Adagrad), in place.

    p = p - p * weight_decay * lr                       (Keras's generic decay, first)
    sum = sum + g * g                                    (starts at initial_accumulator_value, Keras's 0.1)
    p = p - (lr * g) / sqrt(sum + eps)                   (eps inside the root; Keras has no lr_decay)

    State: ``step``, ``sum`` (Keras's accumulators).
    Source: keras/src/optimizers/adagrad.py.
    """
    lr, eps = float(lr), float(eps)
    _next_step(state)
    if state.get("sum") is None:
        state["sum"] = np.full_like(p, float(initial_accumulator_value))
    acc = state["sum"]
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    acc += grad * grad
    p -= (lr * grad) / np.sqrt(acc + eps)


STEPS = {"SGD:keras": keras_sgd_step, "Adam:keras": keras_adam_step, "AdamW:keras": keras_adamw_step,
         "RMSprop:keras": keras_rmsprop_step, "Adagrad:keras": keras_adagrad_step}

#: the array state entries each step may create (shaped like p), torch's names; conditional ones as in
#: ``fastopt.reference.STATE_NAMES``
STATE_NAMES = {"SGD:keras": ("momentum_buffer",), "Adam:keras": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "AdamW:keras": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "RMSprop:keras": ("square_avg", "momentum_buffer", "grad_avg"), "Adagrad:keras": ("sum",)}
