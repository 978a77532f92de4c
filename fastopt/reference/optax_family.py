"""Naive NumPy references of optax's (paper) optimizers: the oracle for their kernels.

The conventions (shared with :mod:`fastopt.reference.keras_family`) are in the :mod:`fastopt.reference`
docstring.

optax (``optax/_src/alias.py``, ``transform.py``, ``contrib/_schedule_free.py``, optax 0.2.8): ``lars_step``,
``yogi_step``, ``adabelief_step``, ``adan_step``, ``schedule_free_adamw_step``, ``schedule_free_sgd_step`` (with
``schedule_free_eval_params`` for the evaluation sequence). optax returns updates ``u`` and applies ``p = p + u``;
``u = -lr * d`` there is written ``p -= lr * d`` here (the negation is exact).

``STEPS`` maps the fastopt class name to the step function; ``STATE_NAMES`` maps it to the names of the array
state entries (buffers shaped like ``p``), and ``SCALAR_STATE_NAMES`` to the Python-float state entries
besides ``step``.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.ops import _norm
from fastopt.reference.state import _full_state, _next_step, _zeros_state

__all__ = ["lars_step", "yogi_step", "adabelief_step", "adan_step",
           "schedule_free_adamw_step", "schedule_free_sgd_step", "schedule_free_eval_params",
           "STEPS", "STATE_NAMES", "SCALAR_STATE_NAMES"]


# ------------------------------------------------------------------------------------------------------ optax

def lars_step(p, g, state, *, lr=1e-3, weight_decay=0.0, trust_coefficient=0.001, eps=0.0, momentum=0.9,
              nesterov=False, maximize=False):
    """One LARS step (optax.lars, both masks True), in place.

    d = g + weight_decay * p
    ratio = trust_coefficient * ||p|| / (||d|| + eps) if ||p|| != 0 and ||d|| != 0 else 1   (WHOLE-array norms)
    d = lr * (ratio * d)
    buf = d + momentum * buf                       (buf starts at 0; the learning rate is inside the buffer)
    p = p - (d + momentum * buf if nesterov else buf)

    Symbols: buf = ``momentum_buffer``: optax's ``trace``, negated (optax traces ``-lr * ratio * d``). With
    momentum = 0 no buffer is kept (optax keeps one that is always equal to the update). The trust coefficient
    multiplies the ratio, so with the default 0.001 the step is ``lr * 0.001 * ||p||`` in the direction of d
    (optax's default ``lr`` is required; 1e-3 here). A NaN norm gives a NaN ratio (optax tests only ``== 0``).

    State: ``step``, ``momentum_buffer`` (momentum != 0).
    Source: optax/_src/alias.py ``lars`` = chain(add_decayed_weights, scale_by_trust_ratio, scale_by_learning_rate,
    trace) (You et al. 2017, "Large Batch Training of Convolutional Networks").
    """
    lr, weight_decay, trust_coefficient = float(lr), float(weight_decay), float(trust_coefficient)
    eps, momentum = float(eps), float(momentum)
    _next_step(state)
    grad = -g if maximize else g
    d = grad + weight_decay * p if weight_decay != 0 else grad
    p_norm, d_norm = _norm(p), _norm(d)
    ratio = 1.0 if p_norm == 0 or d_norm == 0 else trust_coefficient * p_norm / (d_norm + eps)
    d = lr * (d * ratio)
    if momentum != 0:
        buf = _zeros_state(state, "momentum_buffer", p)
        buf[...] = d + momentum * buf
        d = d + momentum * buf if nesterov else buf
    p -= d


def yogi_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6,
              maximize=False):
    """One Yogi step (optax.yogi; ``eps_root`` and ``initial_accumulator_value`` from optax.scale_by_yogi), in place.

    t = t + 1
    m = (1 - b1) * g + b1 * m
    v = v - (1 - b2) * sign(v - g * g) * (g * g)
    p = p - lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t) + eps_root) + eps)

    Symbols: m = ``exp_avg``, v = ``exp_avg_sq``. BOTH start at ``initial_accumulator_value`` = 1e-6 in optax
    (not only v, as in the paper, and not 0 as in Adam), and both are bias-corrected as Adam's are although
    they do not start at 0. The default eps = 1e-3 is optax's (the paper's).

    State: ``step``, ``exp_avg``, ``exp_avg_sq``.
    Source: optax/_src/transform.py ``scale_by_yogi`` (Zaheer et al. 2018, "Adaptive Methods for Nonconvex
    Optimization").
    """
    lr, eps, eps_root, b1, b2 = float(lr), float(eps), float(eps_root), float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _full_state(state, "exp_avg", p.shape, p.dtype, initial_accumulator_value)
    v = _full_state(state, "exp_avg_sq", p.shape, p.dtype, initial_accumulator_value)
    grad = -g if maximize else g
    m[...] = (1 - b1) * grad + b1 * m
    g2 = grad * grad
    v[...] = v - (1 - b2) * np.sign(v - g2) * g2
    p -= lr * ((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t) + eps_root) + eps))


def adabelief_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, nesterov=False,
                   maximize=False):
    """One AdaBelief step (optax.adabelief), in place.

    t = t + 1
    m = (1 - b1) * g + b1 * m
    s = (1 - b2) * (g - m)**2 + b2 * s + eps_root                 (the prediction error uses the NEW m)
    m_hat = m / (1 - b1**t), or with nesterov b1 * m / (1 - b1**(t+1)) + (1 - b1) * g / (1 - b1**t)
    p = p - lr * m_hat / (sqrt(s / (1 - b2**t)) + eps)

    Symbols: m = ``exp_avg``, s = ``exp_avg_var`` (both start at 0). ``eps_root`` is added to the STORED s every
    step (it accumulates: s tends to eps_root / (1 - b2) in the absence of gradient noise). optax's adabelief has
    no weight decay.

    State: ``step``, ``exp_avg``, ``exp_avg_var``.
    Source: optax/_src/transform.py ``scale_by_belief`` (Zhuang et al. 2020, "AdaBelief Optimizer").
    """
    lr, eps, eps_root, b1, b2 = float(lr), float(eps), float(eps_root), float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    s = _zeros_state(state, "exp_avg_var", p)
    grad = -g if maximize else g
    m[...] = (1 - b1) * grad + b1 * m
    err = grad - m
    s[...] = (1 - b2) * (err * err) + b2 * s
    s += eps_root
    if nesterov:
        m_hat = b1 * (m / (1 - b1 ** (t + 1))) + (1 - b1) * (grad / (1 - b1 ** t))
    else:
        m_hat = m / (1 - b1 ** t)
    p -= lr * (m_hat / (np.sqrt(s / (1 - b2 ** t)) + eps))


def adan_step(p, g, state, *, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, eps_root=1e-8, weight_decay=0.0,
              maximize=False):
    """One Adan step (optax.adan), in place.

    t = t + 1;  d = 0 on the first step, else g - g_prev
    m = (1 - b1) * g + b1 * m
    v = (1 - b2) * d + b2 * v
    n = (1 - b3) * (g + (1 - b2) * d)**2 + b3 * n
    u = (m / (1 - b1**t) + (1 - b2) * v / (1 - b2**t)) / (sqrt(n / (1 - b3**t) + eps_root) + eps)
    p = p - lr * (u + weight_decay * p);  g_prev = g

    Symbols: b1, b2, b3 = ``betas`` (optax's b1, b2, b3: decay rates, the weight of the OLD value, as in the
    official PyTorch Adan; the paper writes 1 - b), m = ``exp_avg``, v = ``exp_avg_diff``, n = ``exp_avg_sq``,
    g_prev = ``pre_grad`` (all start at 0). Surprises: optax bias-corrects all three moments, including v
    although its first value is 0 (d = 0 on the first step, not g - 0); optax.adan's eps_root default is 1e-8
    (optax.scale_by_adan's is 0); the weight decay is added to the update (``p - lr * (u + wd * p)``,
    AdamW-style), NOT the paper's proximal ``(p - lr * u) / (1 + lr * wd)`` that optax's docstring shows.

    State: ``step``, ``exp_avg``, ``exp_avg_diff``, ``exp_avg_sq``, ``pre_grad``.
    Source: optax/_src/transform.py ``scale_by_adan`` + alias.py ``adan`` (Xie et al. 2022, "Adan: Adaptive
    Nesterov Momentum Algorithm for Faster Optimizing Deep Models").
    """
    lr, eps, eps_root, weight_decay = float(lr), float(eps), float(eps_root), float(weight_decay)
    b1, b2, b3 = (float(b) for b in betas)
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    v = _zeros_state(state, "exp_avg_diff", p)
    n = _zeros_state(state, "exp_avg_sq", p)
    g_prev = _zeros_state(state, "pre_grad", p)
    grad = -g if maximize else g
    diff = np.zeros_like(grad) if t == 1 else grad - g_prev
    m[...] = (1 - b1) * grad + b1 * m
    v[...] = (1 - b2) * diff + b2 * v
    sq = grad + (1 - b2) * diff
    n[...] = (1 - b3) * (sq * sq) + b3 * n
    u = (m / (1 - b1 ** t) + (1 - b2) * (v / (1 - b2 ** t))) / (np.sqrt(n / (1 - b3 ** t) + eps_root) + eps)
    if weight_decay != 0:
        u = u + weight_decay * p
    p -= lr * u
    g_prev[...] = grad


def _warmup_lr(lr, warmup_steps, count):
    """optax.warmup_constant_schedule(0, lr, warmup_steps)(count); no warmup when warmup_steps is 0 or None."""
    if not warmup_steps or warmup_steps <= 0:
        return lr
    frac = 1.0 - min(max(count, 0), warmup_steps) / warmup_steps
    return -lr * frac + lr


def _schedule_free_step(p, state, t, lr, warmup_steps, b1, weight_lr_power, direction):
    """The schedule-free wrapper shared by the AdamW and SGD variants (p holds y); ``direction(lr_z)`` returns
    the base optimizer's step ``lr_z * d`` (after creating its own state)."""
    if state.get("z") is None:
        state["z"] = p.copy()
        state["x"] = p.copy()
    z, x = state["z"], state["x"]
    lr_t = _warmup_lr(lr, warmup_steps, t)          # the wrapper's count starts at 1
    lr_z = _warmup_lr(lr, warmup_steps, t - 1)      # the base optimizer's count starts at 0
    max_lr = float(np.maximum(float(state.get("max_lr", 0.0)), lr_t))
    weight = max_lr ** float(weight_lr_power)
    weight_sum = float(state.get("weight_sum", 0.0)) + weight
    if math.isnan(weight) or math.isnan(weight_sum):
        ck = math.nan
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ck = float(np.nan_to_num(np.float64(weight) / np.float64(weight_sum), nan=0.0, posinf=np.inf))
    z -= direction(lr_z)
    x[...] = (1 - ck) * x + ck * z
    p[...] = b1 * x + (1 - b1) * z
    state["max_lr"], state["weight_sum"] = max_lr, weight_sum


def schedule_free_adamw_step(p, g, state, *, lr=0.0025, warmup_steps=0, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0, weight_lr_power=2.0, maximize=False):
    """One schedule-free AdamW step (optax.contrib.schedule_free_adamw), in place; ``p`` holds y.

    t = t + 1;  lr_t = warmup(t), lr_z = warmup(t - 1)    (warmup(c) = lr * min(c, W) / W, or lr when W = 0)
    M = max(M, lr_t);  w = M**weight_lr_power;  W_sum = W_sum + w;  c_t = w / W_sum  (0/0 -> 0)
    v = (1 - b2) * g * g + b2 * v
    z = z - lr_z * (g * (1 / (sqrt(v / (1 - b2**t)) + eps)) + weight_decay * y)     (gradient and decay at y)
    x = (1 - c_t) * x + c_t * z
    y = b1 * x + (1 - b1) * z

    Symbols: y = ``p`` (the train sequence, where gradients are taken), x = ``x`` (the evaluation sequence, see
    ``schedule_free_eval_params``), z = ``z`` (the SGD/Adam sequence), v = ``exp_avg_sq``; x, y, z all start
    at the initial p; M = ``max_lr``, W_sum = ``weight_sum`` (Python floats, start at 0); b1, b2 = ``betas``
    (b1 is the interpolation weight: there is no first moment), W = ``warmup_steps``.

    Surprises: optax evaluates the warmup schedule at the wrapper's count (starting at 1) for the weights but at
    the base optimizer's own count (starting at 0) for z, so with warmup the first step does not move z at all
    (facebookresearch/schedule_free uses lr * (k + 1) / W for both); ``warmup_steps=0`` means no warmup here,
    while optax's ``warmup_steps=0`` gives a constant learning rate of 0 (None is optax's "no warmup").
    optax computes the warmup learning rate in float32 even under ``jax_enable_x64`` (its int32 count divided
    by ``warmup_steps`` is float32); here it is a double. optax does not store x: it recomputes it from y and z
    each step (``x = (y - (1 - b1) z) / b1``) and writes y as ``y + (y_new - y)``; equal to this up to rounding.

    State: ``step``, ``z``, ``x``, ``exp_avg_sq``, ``max_lr``, ``weight_sum``.
    Source: optax/contrib/_schedule_free.py (Defazio et al. 2024, "The Road Less Scheduled").
    """
    lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
    b1, b2 = float(betas[0]), float(betas[1])
    t = _next_step(state)
    v = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g

    def direction(lr_z):
        v[...] = (1 - b2) * (grad * grad) + b2 * v
        d = grad * (1 / (np.sqrt(v / (1 - b2 ** t)) + eps))
        if weight_decay != 0:
            d = d + weight_decay * p
        return lr_z * d

    _schedule_free_step(p, state, t, lr, warmup_steps, b1, weight_lr_power, direction)


def schedule_free_sgd_step(p, g, state, *, lr=1.0, warmup_steps=0, b1=0.9, weight_decay=0.0, weight_lr_power=2.0,
                           maximize=False):
    """One schedule-free SGD step (optax.contrib.schedule_free_sgd), in place; ``p`` holds y.

    As ``schedule_free_adamw_step`` with the base step z = z - lr_z * (g + weight_decay * y).

    Symbols: b1 = ``b1`` (optax's name; facebookresearch/schedule_free calls it ``momentum``), y = ``p``, and the
    state of ``schedule_free_adamw_step`` without ``exp_avg_sq``. optax's default weight_decay is None (= 0).

    State: ``step``, ``z``, ``x``, ``max_lr``, ``weight_sum``.
    Source: optax/contrib/_schedule_free.py (Defazio et al. 2024, "The Road Less Scheduled").
    """
    lr, weight_decay, b1 = float(lr), float(weight_decay or 0.0), float(b1)
    t = _next_step(state)
    grad = -g if maximize else g

    def direction(lr_z):
        d = grad + weight_decay * p if weight_decay != 0 else grad
        return lr_z * d

    _schedule_free_step(p, state, t, lr, warmup_steps, b1, weight_lr_power, direction)


def schedule_free_eval_params(p, state):
    """The evaluation sequence x of a schedule-free optimizer (a new array), as
    optax.contrib.schedule_free_eval_params returns it: what ``eval()`` puts in the parameters.

    ``p`` is the train sequence y; before the first step x = y = p. ``train()`` restores
    y = b1 * x + (1 - b1) * z (which is ``p`` itself, kept aside).
    """
    x = state.get("x")
    return p.copy() if x is None else x.copy()


STEPS = {"LARS": lars_step, "Yogi": yogi_step, "AdaBelief": adabelief_step, "Adan": adan_step,
         "ScheduleFreeAdamW": schedule_free_adamw_step, "ScheduleFreeSGD": schedule_free_sgd_step}

#: the array state entries each step may create (all shaped like p)
STATE_NAMES = {"LARS": ("momentum_buffer",), "Yogi": ("exp_avg", "exp_avg_sq"),
               "AdaBelief": ("exp_avg", "exp_avg_var"),
               "Adan": ("exp_avg", "exp_avg_diff", "exp_avg_sq", "pre_grad"),
               "ScheduleFreeAdamW": ("z", "x", "exp_avg_sq"), "ScheduleFreeSGD": ("z", "x")}

#: the Python-float state entries besides ``step``
SCALAR_STATE_NAMES = {"ScheduleFreeAdamW": ("max_lr", "weight_sum"), "ScheduleFreeSGD": ("max_lr", "weight_sum")}
