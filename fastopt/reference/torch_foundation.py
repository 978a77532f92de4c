"""Naive NumPy references of torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad (the foundation's rules).

Written from torch.optim's documented formulas in the order of operations of its single-tensor
(``foreach=False``) implementation; the conventions are in the :mod:`fastopt.reference` docstring.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.ops import _lerp
from fastopt.reference.state import _next_step, _zeros_state

__all__ = ["sgd_step", "adam_step", "adamw_step", "rmsprop_step", "adagrad_step"]


def sgd_step(p, g, state, *, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             maximize=False):
    """One SGD step (torch.optim.SGD), in place.

    d = -g if maximize else g;  d = d + weight_decay * p
    buf = d on the first step, else momentum * buf + (1 - dampening) * d    (only when momentum != 0)
    d = d + momentum * buf if nesterov else buf
    p = p - lr * d

    State: ``momentum_buffer`` (only when momentum != 0; absent or None before the first step).
    """
    lr, momentum, dampening, weight_decay = float(lr), float(momentum), float(dampening), float(weight_decay)
    d_p = -g if maximize else g
    if weight_decay != 0:
        d_p = d_p + weight_decay * p
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            # torch clones the gradient on the first step: no dampening applied to it
            buf = d_p.copy()
            state["momentum_buffer"] = buf
        else:
            buf *= momentum
            buf += (1 - dampening) * d_p
        d_p = d_p + momentum * buf if nesterov else buf
    p -= lr * d_p


def adam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              maximize=False, decoupled=False):
    """One Adam step (torch.optim.Adam; AdamW with ``decoupled=True``), in place.

    t = t + 1;  g = -g if maximize else g
    p = p * (1 - lr * weight_decay) if decoupled, else g = g + weight_decay * p
    m = lerp(m, g, 1 - b1) = m + (1 - b1) * (g - m);  v = b2 * v + (1 - b2) * g * g
    v_hat = vmax = maximum(vmax, v) if amsgrad else v
    p = p + (-step_size * m) / (sqrt(v_hat) / bc2_sqrt + eps)
    with step_size = lr / (1 - b1**t) and bc2_sqrt = sqrt(1 - b2**t), in double.

    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).
    """
    lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
    b1, b2 = float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    v = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * p
    m[...] = _lerp(m, grad, 1 - b1)
    v *= b2
    v += (1 - b2) * grad * grad
    step_size = lr / (1 - b1 ** t)
    bc2_sqrt = math.sqrt(1 - b2 ** t)
    if amsgrad:
        vmax = _zeros_state(state, "max_exp_avg_sq", p)
        np.maximum(vmax, v, out=vmax)  # NaN propagates, as torch.maximum
        denom = np.sqrt(vmax) / bc2_sqrt + eps
    else:
        denom = np.sqrt(v) / bc2_sqrt + eps
    p += (-step_size * m) / denom


def adamw_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
               maximize=False):
    """One AdamW step (torch.optim.AdamW): ``adam_step(..., decoupled=True)`` with torch's default
    ``weight_decay=1e-2``."""
    adam_step(p, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
              maximize=maximize, decoupled=True)


def rmsprop_step(p, g, state, *, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
    """One RMSprop step (torch.optim.RMSprop), in place.

    g = -g if maximize else g;  g = g + weight_decay * p
    sq = alpha * sq + (1 - alpha) * g * g
    ga = lerp(ga, g, 1 - alpha);  den = sqrt(sq - ga * ga) + eps     (centered)
    den = sqrt(sq) + eps                                                   (otherwise)
    buf = momentum * buf + g / den;  p = p - lr * buf                      (momentum > 0)
    p = p + (-lr * g) / den                                                (otherwise)

    State: ``step``, ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0, starts at 0).
    """
    lr, alpha, eps = float(lr), float(alpha), float(eps)
    weight_decay, momentum = float(weight_decay), float(momentum)
    _next_step(state)
    square_avg = _zeros_state(state, "square_avg", p)
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        grad_avg = _zeros_state(state, "grad_avg", p)
        grad_avg[...] = _lerp(grad_avg, grad, 1 - alpha)
        avg = np.sqrt(square_avg - grad_avg * grad_avg)
    else:
        avg = np.sqrt(square_avg)
    avg = avg + eps
    if momentum > 0:
        buf = _zeros_state(state, "momentum_buffer", p)
        buf *= momentum
        buf += grad / avg
        p -= lr * buf
    else:
        p += (-lr * grad) / avg


def adagrad_step(p, g, state, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, maximize=False):
    """One Adagrad step (torch.optim.Adagrad), in place.

    t = t + 1;  g = -g if maximize else g;  g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    sum = sum + g * g
    p = p + (-clr * g) / (sqrt(sum) + eps)

    State: ``step``, ``sum`` (starts at ``initial_accumulator_value``).
    """
    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
    t = _next_step(state)
    if state.get("sum") is None:
        state["sum"] = np.full_like(p, float(initial_accumulator_value))
    acc = state["sum"]
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    acc += grad * grad
    std = np.sqrt(acc) + eps
    p += (-clr * grad) / std
