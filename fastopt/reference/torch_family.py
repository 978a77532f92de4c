"""Naive NumPy references of the rest of torch.optim's rules: Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, Adafactor.

Written from torch.optim's documented formulas in the order of operations of its single-tensor
(``foreach=False``) implementation; the conventions are in the :mod:`fastopt.reference` docstring.
"""
from __future__ import annotations

import numpy as np

from fastopt.reference.ops import _lerp, _vector_norm
from fastopt.reference.state import _next_step, _zeros_state

__all__ = ["adadelta_step", "adamax_step", "nadam_step", "radam_step", "rprop_step", "asgd_step", "adafactor_step"]


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
