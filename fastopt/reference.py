"""Naive NumPy reference implementations: the readable spec, the test oracle, the benchmark baseline.

Every update rule here is written straight from the formulas documented by ``torch.optim``, in the order of
operations of torch's single-tensor (``foreach=False``) implementation, as plain whole-array NumPy expressions
with all their temporaries, the way a user would write them. Nothing here is fast, and nothing is meant to be:
the fused kernels in ``fastopt._kernels`` are tested against these functions, and the benchmarks report the
speed-up over them.

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
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["sgd_step", "adam_step", "adamw_step", "rmsprop_step", "adagrad_step", "STEPS",
           "clip_grad_norm_", "clip_grad_value_", "keras_clip", "Reference"]


def _zeros_state(state, key, p):
    if state.get(key) is None:
        state[key] = np.zeros_like(p)
    return state[key]


def _lerp(a, b, w):
    """torch.lerp(a, b, w): ``a + w * (b - a)``, or ``b - (b - a) * (1 - w)`` when w >= 0.5, with
    ``1 - w`` computed in the arrays' dtype (torch casts the weight first: 1 - float32(0.8) is not
    float32(0.2))."""
    if w < 0.5:
        return a + w * (b - a)
    one, weight = a.dtype.type(1), a.dtype.type(w)
    return b - (b - a) * (one - weight)


def _next_step(state):
    state["step"] = int(state.get("step", 0)) + 1
    return state["step"]


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


STEPS = {"SGD": sgd_step, "Adam": adam_step, "AdamW": adamw_step, "RMSprop": rmsprop_step,
         "Adagrad": adagrad_step}


def _vector_norm(x, ord):
    """torch.linalg.vector_norm of ``x`` flattened, accumulated in float64."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 and ord == math.inf:
        return 0.0  # torch raises here (max has no identity); 0 is the natural answer for |x| >= 0
    return float(np.linalg.norm(x, ord))


def clip_grad_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale ``grads`` in place so that their total norm is at most ``max_norm`` (torch.nn.utils.clip_grad_norm_).

    total = || (||g_1||_q, ..., ||g_n||_q) ||_q       (q = norm_type; inf: max |g|)
    g = g * min(max_norm / (total + 1e-6), 1)         (always applied, as torch does)

    Norms accumulate in float64 (torch accumulates in the gradients' dtype). Returns the total norm as a float;
    an empty list gives 0.0. With ``error_if_nonfinite`` a NaN or infinite total raises RuntimeError before any
    gradient changes.
    """
    grads = list(grads)
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    total = _vector_norm([_vector_norm(g, norm_type) for g in grads], norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`")
    clip_coef = float(max_norm) / (total + 1e-6)
    if clip_coef > 1.0:  # a NaN coefficient stays NaN, as torch.clamp
        clip_coef = 1.0
    with np.errstate(invalid="ignore"):  # inf * 0 -> NaN is the intended result for a non-finite total
        for g in grads:
            g *= clip_coef
    return total


def clip_grad_value_(grads, clip_value):
    """Clip every gradient in place to [-clip_value, clip_value] (torch.nn.utils.clip_grad_value_)."""
    clip_value = float(clip_value)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)


def keras_clip(grads, *, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """Keras 3 gradient clipping (``BaseOptimizer._clip_gradients``), returning new arrays.

    clipnorm:         g = g * clipnorm / max(||g||_2, clipnorm)               (each array on its own)
    global_clipnorm:  s = global_clipnorm * min(1 / N, 1 / global_clipnorm) + (N - N),  g = g * s
                      (N = sqrt(sum ||g_i||^2); the N - N term turns a non-finite N into a NaN scale)
    clipvalue:        g = clip(g, -clipvalue, clipvalue)

    At most one keyword may be set (Keras raises ValueError otherwise); None, 0 or a negative value means off.
    Norms accumulate in float64 (Keras computes them in the gradients' dtype).
    """
    if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
            f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
    grads = list(grads)
    if clipnorm and clipnorm > 0:
        clipnorm = float(clipnorm)
        # np.maximum, not max(): a NaN norm must give NaN gradients, as ops.maximum does
        return [g * clipnorm / float(np.maximum(_vector_norm(g, 2.0), clipnorm)) for g in grads]
    if global_clipnorm and global_clipnorm > 0:
        c = float(global_clipnorm)
        norm = np.sqrt(np.float64(sum(float(np.sum(np.square(np.asarray(g, np.float64)))) for g in grads)))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = float(c * np.minimum(1.0 / norm, 1.0 / c) + (norm - norm))
        return [g * scale for g in grads]
    if clipvalue and clipvalue > 0:
        v = float(clipvalue)
        return [np.clip(g, -v, v) for g in grads]
    return [g.copy() for g in grads]


class Reference:
    """Reference optimizer over a list of arrays: ``Reference("Adam", params, clipnorm=..., **hyper).step(grads)``.

    Each step multiplies the gradients by ``grad_scale`` (new arrays), applies ``keras_clip`` when a clipping
    keyword is set, then ``STEPS[name]`` to each array with its own state dict. ``params`` are updated in place;
    ``state`` is the list of per-array state dicts.
    """

    def __init__(self, name, params, *, clipnorm=None, clipvalue=None, global_clipnorm=None, **hyper):
        if name not in STEPS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(STEPS)}")
        # validate the clipping keywords now, as Keras does in the constructor
        keras_clip([], clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.name = name
        self.params = list(params)
        self.hyper = hyper
        self.clip = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        self.state = [{} for _ in self.params]

    def step(self, grads, grad_scale=1.0):
        """Apply one update with ``grads`` (one array per parameter); ``grads`` are not modified."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        grad_scale = float(grad_scale)
        grads = [g * grad_scale for g in grads]
        if any(v is not None for v in self.clip.values()):
            grads = keras_clip(grads, **self.clip)
        update = STEPS[self.name]
        for p, g, state in zip(self.params, grads, self.state):
            update(p, g, state, **self.hyper)
