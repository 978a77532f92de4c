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

from fastopt._reference_state import _next_step, _zeros_state

__all__ = ["sgd_step", "adam_step", "adamw_step", "rmsprop_step", "adagrad_step", "adadelta_step", "adamax_step",
           "nadam_step", "radam_step", "rprop_step", "asgd_step", "adafactor_step", "STEPS", "STATE_NAMES",
           "SCALAR_STATE_NAMES",
           "clip_grad_norm_", "clip_grad_value_", "keras_clip", "Reference", "muon_step", "Muon"]


def _lerp(a, b, w):
    """torch.lerp(a, b, w): ``a + w * (b - a)``, or ``b - (b - a) * (1 - w)`` when w >= 0.5, with
    ``1 - w`` computed in the arrays' dtype (torch casts the weight first: 1 - float32(0.8) is not
    float32(0.2))."""
    if w < 0.5:
        return a + w * (b - a)
    one, weight = a.dtype.type(1), a.dtype.type(w)
    return b - (b - a) * (one - weight)


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


def adadelta_step(p, g, state, *, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    """One Adadelta step (torch.optim.Adadelta), in place.

    t = t + 1;  g = -g if maximize else g;  g = g + weight_decay * p
    v = rho * v + (1 - rho) * g * g
    delta = (sqrt(u + eps) / sqrt(v + eps)) * g        (eps inside both square roots)
    u = rho * u + (1 - rho) * delta * delta            (u updated AFTER delta, with the new delta)
    p = p - lr * delta

    State: ``step``, ``square_avg`` (v), ``acc_delta`` (u), both starting at 0.
    """
    lr, rho, eps, weight_decay = float(lr), float(rho), float(eps), float(weight_decay)
    _next_step(state)
    square_avg = _zeros_state(state, "square_avg", p)
    acc_delta = _zeros_state(state, "acc_delta", p)
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    square_avg *= rho
    square_avg += (1 - rho) * grad * grad
    std = np.sqrt(square_avg + eps)
    delta = np.sqrt(acc_delta + eps)
    delta = delta / std
    delta = delta * grad
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    p += -lr * delta


def adamax_step(p, g, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    """One Adamax step (torch.optim.Adamax), in place.

    t = t + 1;  g = -g if maximize else g;  g = g + weight_decay * p
    m = lerp(m, g, 1 - b1)
    u = maximum(b2 * u, |g| + eps)                    (eps inside the max, not added to the denominator)
    p = p + (-clr * m) / u,   clr = lr / (1 - b1**t)  (in double)

    State: ``step``, ``exp_avg`` (m), ``exp_inf`` (u), both starting at 0. A NaN in either operand of the
    maximum propagates (torch.maximum).
    """
    lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
    b1, b2 = float(betas[0]), float(betas[1])
    t = _next_step(state)
    exp_avg = _zeros_state(state, "exp_avg", p)
    exp_inf = _zeros_state(state, "exp_inf", p)
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    exp_avg[...] = _lerp(exp_avg, grad, 1 - b1)
    exp_inf *= b2
    np.maximum(exp_inf, np.abs(grad) + eps, out=exp_inf)
    clr = lr / (1 - b1 ** t)
    p += (-clr * exp_avg) / exp_inf


def nadam_step(p, g, state, *, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
               decoupled_weight_decay=False, maximize=False):
    """One NAdam step (torch.optim.NAdam; NAdamW with ``decoupled_weight_decay=True``), in place.

    t = t + 1;  g = -g if maximize else g
    p = p * (1 - lr * weight_decay) if decoupled_weight_decay, else g = g + weight_decay * p
    mu_t = b1 * (1 - 0.5 * 0.96**(t * momentum_decay));  mu_next = the same at t + 1
    mu_product = mu_product * mu_t                     (the product of mu_1 .. mu_t; starts at 1.0)
    m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g * g
    den = sqrt(v / (1 - b2**t)) + eps                  (divide, then sqrt: not Adam's sqrt(v) / sqrt(bc2))
    p = p + (c_g * g) / den,  c_g = -lr * (1 - mu_t) / (1 - mu_product)
    p = p + (c_m * m) / den,  c_m = (-lr * mu_next) / (1 - mu_product * mu_next)
    (two separate addcdiv passes, in this order; every coefficient in double)

    State: ``step``, ``mu_product`` (a Python float here), ``exp_avg``, ``exp_avg_sq``.

    torch keeps ``step`` and ``mu_product`` as 0-d tensors of ``torch.get_default_dtype()`` (float32 unless the
    user changed it): under the default dtype torch rounds ``mu_product`` to float32 after every step, even for
    float64 parameters, so float64 results agree with torch to ~1e-7 only; with
    ``torch.set_default_dtype(torch.float64)`` they agree to rounding. The oracle keeps it in double.
    """
    lr, eps, weight_decay, momentum_decay = float(lr), float(eps), float(weight_decay), float(momentum_decay)
    b1, b2 = float(betas[0]), float(betas[1])
    t = _next_step(state)
    if state.get("mu_product") is None:
        state["mu_product"] = 1.0
    exp_avg = _zeros_state(state, "exp_avg", p)
    exp_avg_sq = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    bias_correction2 = 1 - b2 ** t
    if weight_decay != 0:
        if decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * p
    mu = b1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay)))
    mu_next = b1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * momentum_decay)))
    mu_product = float(state["mu_product"]) * mu
    state["mu_product"] = mu_product
    exp_avg[...] = _lerp(exp_avg, grad, 1 - b1)
    exp_avg_sq *= b2
    exp_avg_sq += (1 - b2) * grad * grad
    denom = np.sqrt(exp_avg_sq / bias_correction2) + eps
    mu_product_next = mu_product * mu_next
    p += ((-lr * (1.0 - mu) / (1.0 - mu_product)) * grad) / denom
    p += (((-lr * mu_next) / (1.0 - mu_product_next)) * exp_avg) / denom


def radam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               decoupled_weight_decay=False, maximize=False):
    """One RAdam step (torch.optim.RAdam; RAdamW with ``decoupled_weight_decay=True``), in place.

    t = t + 1;  g = -g if maximize else g
    p = p * (1 - lr * weight_decay) if decoupled_weight_decay, else g = g + weight_decay * p
    m = lerp(m, g, 1 - b1);  v = b2 * v + (1 - b2) * g * g
    rho_inf = 2 / (1 - b2) - 1;  rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)          (in double)
    rho_t > 5:   r = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
                 p = p - ((m / bc1) * lr * ((1 / (sqrt(v) + eps)) * sqrt(bc2))) * r
    otherwise:   p = p - (m / bc1) * lr                                               (plain momentum SGD)
    with bc1 = 1 - b1**t, bc2 = 1 - b2**t.

    torch evaluates ``sqrt(bc2) / (sqrt(v) + eps)`` as ``Tensor.__rtruediv__``, i.e. ``reciprocal(x) * sqrt(bc2)``
    (two roundings), and multiplies left to right: (m / bc1) * lr, then * that, then * r. The rectified branch
    is chosen per step, for the whole array (rho_t depends on t only): with the default b2 = 0.999 the first
    five steps take the un-adapted branch.

    State: ``step``, ``exp_avg``, ``exp_avg_sq``.
    """
    lr, eps, weight_decay = float(lr), float(eps), float(weight_decay)
    b1, b2 = float(betas[0]), float(betas[1])
    t = _next_step(state)
    exp_avg = _zeros_state(state, "exp_avg", p)
    exp_avg_sq = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    if weight_decay != 0:
        if decoupled_weight_decay:
            p *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * p
    exp_avg[...] = _lerp(exp_avg, grad, 1 - b1)
    exp_avg_sq *= b2
    exp_avg_sq += (1 - b2) * grad * grad
    bias_correction1 = 1 - b1 ** t
    bias_correction2 = 1 - b2 ** t
    bias_corrected_exp_avg = exp_avg / bias_correction1
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * (b2 ** t) / bias_correction2
    if rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive_lr = np.reciprocal(np.sqrt(exp_avg_sq) + eps) * (bias_correction2 ** 0.5)
        p -= bias_corrected_exp_avg * lr * adaptive_lr * rect
    else:
        p -= bias_corrected_exp_avg * lr


def rprop_step(p, g, state, *, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), maximize=False,
               weight_decay=0.0):
    """One Rprop step (torch.optim.Rprop), in place.

    t = t + 1;  g = -g if maximize else g;  (g = g + weight_decay * p: a fastopt extension, see below)
    s = sign(g * prev)                                  (elementwise; sign(NaN) = 0 as torch's CPU sign)
    step_size = clamp(step_size * (eta_plus if s > 0 else eta_minus if s < 0 else 1), *step_sizes)
    g = 0 where s < 0                                   (a sign change: no move, and prev forgets this gradient)
    p = p - sign(g) * step_size;  prev = g

    First step: ``prev`` starts at 0 and ``step_size`` at ``lr``, so the first step moves every entry by exactly
    ``clamp(lr, *step_sizes)`` against its gradient's sign. The gradient's magnitude never enters the update.
    A NaN gradient entry gives sign 0 there (torch.sign(NaN) is 0 on CPU): its parameter and step size stay
    unchanged and ``prev`` stores the NaN, so that entry keeps a factor of 1 while prev is NaN.

    ``weight_decay`` is NOT a torch.optim.Rprop option: fastopt accepts it (coupled L2, applied before the sign
    as every torch optimizer's weight_decay) so that all rules share the keyword; the default 0 is torch's rule.

    State: ``step``, ``prev``, ``step_size``.
    """
    lr, weight_decay = float(lr), float(weight_decay)
    etaminus, etaplus = float(etas[0]), float(etas[1])
    step_size_min, step_size_max = float(step_sizes[0]), float(step_sizes[1])
    _next_step(state)
    prev = _zeros_state(state, "prev", p)
    if state.get("step_size") is None:
        state["step_size"] = np.full_like(p, lr)
    step_size = state["step_size"]
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    prod = grad * prev
    one = p.dtype.type(1)
    factor = np.where(prod > 0, p.dtype.type(etaplus), np.where(prod < 0, p.dtype.type(etaminus), one))
    step_size *= factor
    np.clip(step_size, step_size_min, step_size_max, out=step_size)
    grad = np.where(prod < 0, p.dtype.type(0), grad)
    direction = np.where(grad > 0, one, np.where(grad < 0, -one, p.dtype.type(0)))  # torch.sign: NaN -> 0
    p -= direction * step_size
    prev[...] = grad


def asgd_step(p, g, state, *, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, maximize=False):
    """One ASGD step (torch.optim.ASGD, averaged SGD), in place.

    t = t + 1;  g = -g if maximize else g;  g = g + weight_decay * p
    p = p * (1 - lambd * eta);  p = p - eta * g         (eta, mu: the values left by the previous step)
    ax = ax + (p - ax) * mu if mu != 1, else ax = p     (the running average of the iterates)
    then, for the next step (in double):
    eta = lr / (1 + lambd * lr * t)**alpha;  mu = 1 / max(1, t - t0)

    State: ``step``, ``eta`` (starts at lr), ``mu`` (starts at 1.0), ``ax`` (starts at 0); ``eta`` and ``mu`` are
    Python floats here. torch keeps them (and ``step``) as 0-d tensors of ``torch.get_default_dtype()``: under
    the default float32 it rounds ``eta`` and ``mu`` to float32 every step, even for float64 parameters, so
    float64 results then agree with torch to ~1e-7 only; under ``torch.set_default_dtype(torch.float64)`` to
    rounding. With the default t0 = 1e6, mu stays 1 and ax is a copy of p.
    """
    lr, lambd, alpha, t0, weight_decay = float(lr), float(lambd), float(alpha), float(t0), float(weight_decay)
    t = _next_step(state)
    if state.get("eta") is None:
        state["eta"] = lr
    if state.get("mu") is None:
        state["mu"] = 1.0
    ax = _zeros_state(state, "ax", p)
    eta, mu = float(state["eta"]), float(state["mu"])
    grad = -g if maximize else g
    if weight_decay != 0:
        grad = grad + weight_decay * p
    p *= 1 - lambd * eta
    p += -eta * grad
    if mu != 1:
        ax += (p - ax) * mu
    else:
        ax[...] = p
    state["eta"] = lr / ((1 + lambd * lr * t) ** alpha)
    state["mu"] = 1 / max(1, t - t0)


def _rms(x):
    """RMS(x) = ||x||_2 / sqrt(numel), the norm accumulated in float64; 0 for an empty array."""
    return _vector_norm(x, 2.0) / (x.size ** 0.5) if x.size else 0.0


def adafactor_step(p, g, state, *, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0,
                   maximize=False):
    """One Adafactor step (torch.optim.Adafactor), in place.

    t = t + 1;  g = -g if maximize else g;  eps1 = finfo(p.dtype).eps if eps[0] is None else eps[0];  eps2 = eps[1]
    w = t**beta2_decay                                   (= 1 - beta2_t; 1 on the first step)
    rho = min(lr, 1 / sqrt(t));  a = max(eps2, RMS(p)) * rho      (RMS of p BEFORE the weight decay)
    p = p * (1 - lr * weight_decay)                       (decoupled)
    ndim >= 2 (factored over the last two dims, leading dims are a batch):
        R = lerp(R, mean(g*g, axis=-1, keepdims), w)      shape (..., rows, 1)
        C = lerp(C, mean(g*g, axis=-2, keepdims), w)      shape (..., 1, cols)
        V = (R @ C) / max(mean(R, axis=-2, keepdims), eps1)   (outer product over each trailing matrix; the
                                                           row mean is per matrix, shape (..., 1, 1), clamped by
                                                           eps1, not eps1**2)
    ndim <= 1:  V = variance = lerp(variance, g*g, w)
    U = g / sqrt(max(V, eps1**2))                         (torch: clamp(V, eps1*eps1).rsqrt() * g)
    p = p + (-a / max(1, RMS(U) / d)) * U

    torch computes the row/col means as ``norm(g, dim).square() / n`` and RMS(x) as ``x.norm(2).item() /
    numel**0.5``; the oracle does the former the same way (in the array's dtype) and accumulates the two RMS
    reductions in float64. Python's ``max(eps2, nan)`` is eps2 and ``max(1.0, nan)`` is 1.0: a NaN RMS is
    ignored by both scalar maxima (the NaNs still reach p through U). torch raises ZeroDivisionError for an
    empty parameter (0 / 0.0); the oracle takes RMS of an empty array as 0. In torch ``eps1=None`` is resolved
    from the FIRST parameter's dtype of the group and reused for the others.

    State: ``step``, and ``row_var`` (R) and ``col_var`` (C) for arrays with ndim >= 2, else ``variance``.
    """
    lr, beta2_decay, d, weight_decay = float(lr), float(beta2_decay), float(d), float(weight_decay)
    eps1 = float(np.finfo(p.dtype).eps) if eps[0] is None else float(eps[0])
    eps2 = float(eps[1])
    t = _next_step(state)
    grad = -g if maximize else g
    step_float = float(t)
    one_minus_beta2_t = step_float ** beta2_decay
    rho_t = min(lr, 1 / (step_float ** 0.5))
    alpha = max(eps2, _rms(p)) * rho_t
    if weight_decay != 0:
        p *= 1 - lr * weight_decay
    if grad.ndim > 1:
        if state.get("row_var") is None:
            state["row_var"] = np.zeros(grad.shape[:-1] + (1,), dtype=p.dtype)
        if state.get("col_var") is None:
            state["col_var"] = np.zeros(grad.shape[:-2] + (1, grad.shape[-1]), dtype=p.dtype)
        row_var, col_var = state["row_var"], state["col_var"]
        row_mean = np.square(np.sqrt(np.sum(grad * grad, axis=-1, keepdims=True))) / grad.shape[-1]
        row_var[...] = _lerp(row_var, row_mean, one_minus_beta2_t)
        col_mean = np.square(np.sqrt(np.sum(grad * grad, axis=-2, keepdims=True))) / grad.shape[-2]
        col_var[...] = _lerp(col_var, col_mean, one_minus_beta2_t)
        var_estimate = row_var @ col_var
        var_estimate = var_estimate / np.maximum(np.mean(row_var, axis=-2, keepdims=True), eps1)
    else:
        variance = _zeros_state(state, "variance", p)
        variance[...] = _lerp(variance, grad * grad, one_minus_beta2_t)
        var_estimate = variance.copy()
    update = 1 / np.sqrt(np.maximum(var_estimate, eps1 * eps1))
    update = update * grad
    denom = max(1.0, _rms(update) / d)
    p += (-alpha / denom) * update


STEPS = {"SGD": sgd_step, "Adam": adam_step, "AdamW": adamw_step, "RMSprop": rmsprop_step,
         "Adagrad": adagrad_step, "Adadelta": adadelta_step, "Adamax": adamax_step, "NAdam": nadam_step,
         "RAdam": radam_step, "Rprop": rprop_step, "ASGD": asgd_step, "Adafactor": adafactor_step}

#: the per-element state arrays of each rule (besides ``step``), torch's names in the order torch creates them.
#: Every one has the parameter's shape and dtype except Adafactor's ``row_var`` (shape[:-1] + (1,)) and
#: ``col_var`` (shape[:-2] + (1, shape[-1])), which exist only for ndim >= 2, where ``variance`` does not.
#: Entries marked conditional exist only with the option: SGD's momentum_buffer (momentum != 0), Adam's and
#: AdamW's max_exp_avg_sq (amsgrad), RMSprop's momentum_buffer (momentum > 0) and grad_avg (centered).
STATE_NAMES = {"SGD": ("momentum_buffer",), "Adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "AdamW": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "RMSprop": ("square_avg", "momentum_buffer", "grad_avg"), "Adagrad": ("sum",),
               "Adadelta": ("square_avg", "acc_delta"), "Adamax": ("exp_avg", "exp_inf"),
               "NAdam": ("exp_avg", "exp_avg_sq"), "RAdam": ("exp_avg", "exp_avg_sq"),
               "Rprop": ("prev", "step_size"), "ASGD": ("ax",), "Adafactor": ("row_var", "col_var", "variance")}

#: the per-array scalar state (Python floats here, 0-d tensors of the default dtype in torch), in torch's order:
#: the full torch state of a rule is ``step``, then these, then its STATE_NAMES (NAdam: step, mu_product,
#: exp_avg, exp_avg_sq; ASGD: step, eta, mu, ax).
SCALAR_STATE_NAMES = {"NAdam": ("mu_product",), "ASGD": ("eta", "mu")}


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
        convention = hyper.pop("convention", "torch")
        if convention != "torch":  # a source's variant of a rule: STEPS["NAdam:keras"]
            name = f"{name}:{convention}"
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


def _merge_sources():
    """The Keras and optax rules join STEPS; a source's variant of a torch rule is keyed
    ``"<torch name>:<source>"`` (``Reference("NAdam", ..., convention="keras")``)."""
    from fastopt import reference_keras_optax as other
    variants = {"KerasNadam": "NAdam:keras", "KerasAdafactor": "Adafactor:keras"}
    for table, theirs in ((STEPS, other.STEPS), (STATE_NAMES, other.STATE_NAMES),
                          (SCALAR_STATE_NAMES, other.SCALAR_STATE_NAMES)):
        table.update({variants.get(k, k): v for k, v in theirs.items()})
    # Keras's conventions of the rules above, keyed "SGD:keras" ... (no scalar state)
    from fastopt import reference_keras_conventions as conventions
    STEPS.update(conventions.STEPS)
    STATE_NAMES.update(conventions.STATE_NAMES)


_merge_sources()

# Muon (2-D parameters only, so not in STEPS, whose rules take any shape): fastopt.reference_muon
from fastopt.reference_muon import Muon, muon_step  # noqa: E402
