"""Naive NumPy references of Keras 3's own optimizers: the oracle for their kernels.

The conventions (shared with :mod:`fastopt.reference.optax_family`) are in the :mod:`fastopt.reference`
docstring.

Keras (``keras/src/optimizers/*.py``, Keras 3.15): ``ftrl_step``, ``lion_step``, ``lamb_step``,
``keras_nadam_step``, ``keras_adafactor_step``. Every Keras optimizer applies its generic ``weight_decay``
decoupled and BEFORE the update (``BaseOptimizer._apply_weight_decay``: ``p = p - p * wd * lr`` with the raw
learning rate; the torch backend multiplies by ``1 - wd * lr`` instead, equal up to rounding), so the update
itself sees the decayed ``p`` (Lamb's and Adafactor's norms included).

.. warning::
   Keras 3.15 on the torch backend does not compute float64 variables entirely in float64:

   - with the default ``keras.config.floatx()`` of float32, it stores a float ``learning_rate`` in a float32
     Variable (``float32(1e-3) = 1.0000000474974513e-3``), and every Python-float hyperparameter handed to
     ``ops.add``, ``ops.multiply``, ``ops.subtract``, ``ops.power`` or ``ops.clip`` becomes a float32 tensor
     (``convert_to_tensor(float)`` uses floatx): Ftrl's ``learning_rate_power`` and ``l1``, Lamb's ``1 - b1``,
     ``1 - b2`` and ``eps``, Adafactor's ``epsilon_1`` and ``beta_2_decay`` ... (Lion and Nadam are exact: their
     torch implementations pass Python floats to ``torch._foreach_*``). ``keras.config.set_floatx("float64")``
     removes all of these; the tests run float64 that way;
   - whatever floatx is, ops that promote through Keras's ``result_type`` (``ops.mean``, ``ops.maximum``,
     ``ops.minimum``) compute float64 in float32, because ``BIT64_TO_BIT32_DTYPE`` in
     keras/src/backend/common/dtypes.py maps float64 to float32 on every backend but TensorFlow: Adafactor's
     RMS, row/column means and clamps carry float32 rounding (~6e-8 relative) even for float64 variables.

   These functions compute in the arrays' dtype with double-precision scalars throughout.

``STEPS`` maps the fastopt class name to the step function; ``STATE_NAMES`` maps it to the names of the array
state entries (buffers shaped like ``p``, except Adafactor's factored ``r`` and ``c``), and
``SCALAR_STATE_NAMES`` to the Python-float state entries besides ``step``.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.ops import _norm
from fastopt.reference.state import _full_state, _next_step, _zeros_state

__all__ = ["ftrl_step", "lion_step", "lamb_step", "keras_nadam_step", "keras_adafactor_step",
           "STEPS", "STATE_NAMES", "SCALAR_STATE_NAMES"]


# --------------------------------------------------------------------------------------------------- helpers

def _rms(x):
    """sqrt(mean(x**2)) of the whole array, accumulated in float64, as a Python float (NaN for an empty one)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sqrt(np.dot(x, x) / x.size)) if x.size else math.nan


def _libm_pow(x, e):
    """``x ** e`` elementwise as C's ``pow``/``powf`` computes it (NumPy scalars' ``**`` calls them), and as
    NumPy evaluates ``x ** 0.5`` (``sqrt``). NumPy's array power dispatches to CPU-specific SIMD code (on
    AVX-512 machines an approximation that differs from libm's in the last ulp), so without this the oracle's
    last bits would depend on the CPU; FTRL's quotient amplifies such ulps wherever ``linear`` cancels."""
    if e == 0.5:
        return x ** 0.5
    e = x.dtype.type(e)
    return np.array([v ** e for v in x.ravel()], dtype=x.dtype).reshape(x.shape)


def _keras_weight_decay(p, lr, weight_decay):
    """Keras's generic decoupled weight decay, applied before the update: ``p = p - p * wd * lr``."""
    if weight_decay:  # None or 0: off (Keras skips None; 0 is a no-op)
        p -= p * float(weight_decay) * lr

# ------------------------------------------------------------------------------------------------------ Keras

def ftrl_step(p, g, state, *, lr=1e-3, learning_rate_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0,
              l2_shrinkage=0.0, beta=0.0, weight_decay=0.0, maximize=False):
    """One FTRL-Proximal step (keras.optimizers.Ftrl), in place.

    p = p - p * weight_decay * lr                                    (Keras's generic decay, first)
    l2' = l2 + beta / (2 lr);  g_s = g + 2 * l2_shrinkage * p
    n_new = n + g * g                                                (the plain g, not g_s)
    linear = linear + g_s - (n_new**(-c) - n**(-c)) / lr * p         (c = learning_rate_power)
    quadratic = n_new**(-c) / lr + 2 * l2'
    p = (clip(linear, -l1, l1) - linear) / quadratic;  n = n_new

    Symbols: n = ``accumulator`` (starts at ``initial_accumulator_value``), linear = ``linear`` (starts at 0);
    ``l1``, ``l2``, ``l2_shrinkage`` are Keras's ``l1_regularization_strength``, ``l2_regularization_strength``,
    ``l2_shrinkage_regularization_strength``. With the default c = -0.5 the powers are square roots (NumPy's
    ``x ** 0.5`` and torch's ``pow(x, 0.5)`` both evaluate ``sqrt``); other powers are libm's ``pow`` of each
    element (``_libm_pow``: NumPy's vectorized power is CPU-dependent in the last ulp). The new ``p`` does not
    depend on the old one except through ``linear``: FTRL overwrites the parameter each step.

    State: ``step``, ``accumulator``, ``linear`` (Keras's variable names).
    Keras (torch backend, floatx float32) uses float32(learning_rate_power) and float32(l1) even for float64
    variables (see the module docstring).

    Source: keras/src/optimizers/ftrl.py (McMahan et al. 2013, "Ad Click Prediction: a View from the Trenches").
    """
    lr, lr_power = float(lr), float(learning_rate_power)
    l1, l2, l2_shrinkage, beta = float(l1), float(l2), float(l2_shrinkage), float(beta)
    _next_step(state)
    accum = _full_state(state, "accumulator", p.shape, p.dtype, initial_accumulator_value)
    linear = _zeros_state(state, "linear", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    l2_reg = l2 + beta / (2.0 * lr)
    grad_to_use = grad + (2 * l2_shrinkage) * p if l2_shrinkage != 0 else grad
    new_accum = accum + grad * grad
    pow_new, pow_old = _libm_pow(new_accum, -lr_power), _libm_pow(accum, -lr_power)
    linear += grad_to_use - (pow_new - pow_old) / lr * p
    quadratic = pow_new / lr + 2 * l2_reg
    p[...] = (np.clip(linear, -l1, l1) - linear) / quadratic
    accum[...] = new_accum


def lion_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
    """One Lion step (keras.optimizers.Lion), in place.

    p = p - p * weight_decay * lr                    (Keras's generic decay, first; Lion has no decay of its own)
    p = p - lr * sign(m * b1 + g * (1 - b1))
    m = m * b2 + g * (1 - b2)

    Symbols: m = ``exp_avg`` (Keras's ``momentum``; starts at 0), b1, b2 = ``betas`` (Keras's beta_1, beta_2).
    sign(0) = 0. Note the paper's weight decay is ``lr * wd`` added to the sign update, which is the same
    decoupled decay applied after instead of before the sign step.

    State: ``step``, ``exp_avg``.
    Source: keras/src/optimizers/lion.py (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").
    """
    lr, b1, b2 = float(lr), float(betas[0]), float(betas[1])
    _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    p -= lr * np.sign(m * b1 + grad * (1 - b1))
    m[...] = m * b2 + grad * (1 - b2)


def lamb_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, maximize=False):
    """One LAMB step (keras.optimizers.Lamb), in place.

    t = t + 1;  p = p - p * weight_decay * lr        (Keras's generic decay, first)
    m = m + (g - m) * (1 - b1);  v = v + (g * g - v) * (1 - b2)
    r = (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)
    ratio = ||p|| / ||r|| if ||p|| > 0 and ||r|| > 0 else 1        (norms of the WHOLE array, after the decay)
    p = p - (ratio * lr) * r

    Symbols: m = ``exp_avg``, v = ``exp_avg_sq`` (Keras's momentum, velocity; both start at 0). Keras's default
    epsilon is 1e-7 (not the paper's 1e-6). Unlike the paper (and optax.lamb) the weight decay is NOT part of
    the update whose norm enters the trust ratio: Keras decays ``p`` before and the ratio sees the decayed
    ``p``. A NaN norm gives ratio 1 (Keras's ``where(norm > 0, ...)``); the NaN still reaches ``p`` through r.

    State: ``step``, ``exp_avg``, ``exp_avg_sq``.
    Source: keras/src/optimizers/lamb.py (You et al. 2019, "Large Batch Optimization for Deep Learning").
    """
    lr, eps, b1, b2 = float(lr), float(eps), float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    v = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    update = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    w_norm, u_norm = _norm(p), _norm(update)
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    p -= (ratio * lr) * update


def keras_nadam_step(p, g, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, maximize=False):
    """One Nadam step as Keras computes it (keras.optimizers.Nadam, Dozat's momentum schedule), in place.

    t = t + 1;  p = p - p * weight_decay * lr        (Keras's generic decay, first)
    u_t = b1 * (1 - 0.5 * 0.96**t);  u_{t+1} = b1 * (1 - 0.5 * 0.96**(t+1))
    P_t = P_{t-1} * u_t (P_0 = 1);  P_{t+1} = P_t * u_{t+1}
    m = m + (g - m) * (1 - b1);  v = v + (g * g - v) * (1 - b2)
    m_hat = u_{t+1} * m / (1 - P_{t+1}) + (1 - u_t) * g / (1 - P_t);  v_hat = v / (1 - b2**t)
    p = p - (m_hat * lr) / (sqrt(v_hat) + eps)

    Symbols: m = ``exp_avg``, v = ``exp_avg_sq`` (Keras's momentum, velocity), P = ``u_product`` (Keras keeps
    one per optimizer, in the dtype of the first variable, updated before the per-variable steps; it depends on
    t only, so one per array is the same). The 0.96 decay and the 0.5 factor are fixed constants of Keras (not
    hyperparameters). Differs from torch.optim.NAdam (momentum_decay=4e-3: u_t = b1 (1 - 0.5 * 0.96**(t/250)),
    eps 1e-8): Keras's schedule reaches b1 within ~100 steps instead of ~25,000.

    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``u_product`` (a Python float).
    Source: keras/src/optimizers/nadam.py (the torch backend's torch_nadam.py computes the same with
    ``m * b1 + g * (1 - b1)``).
    """
    lr, eps, b1, b2 = float(lr), float(eps), float(betas[0]), float(betas[1])
    t = _next_step(state)
    m = _zeros_state(state, "exp_avg", p)
    v = _zeros_state(state, "exp_avg_sq", p)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    u_product = float(state.get("u_product", 1.0)) * b1 * (1.0 - 0.5 * 0.96 ** t)
    state["u_product"] = u_product
    u_t = b1 * (1.0 - 0.5 * 0.96 ** t)
    u_t_1 = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
    u_product_t_1 = u_product * u_t_1
    m += (grad - m) * (1 - b1)
    v += (grad * grad - v) * (1 - b2)
    m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * grad) / (1 - u_product)
    v_hat = v / (1 - b2 ** t)
    p -= (m_hat * lr) / (np.sqrt(v_hat) + eps)


def keras_adafactor_step(p, g, state, *, lr=1e-3, beta2_decay=-0.8, eps=(1e-30, 1e-3), d=1.0, relative_step=True,
                         weight_decay=0.0, maximize=False):
    """One Adafactor step as Keras computes it (keras.optimizers.Adafactor), in place.

    Hyperparameters take torch.optim.Adafactor's names for the concepts the two share: ``beta2_decay`` is
    Keras's ``beta_2_decay``, ``eps = (epsilon_1, epsilon_2)`` (``epsilon_1`` None: the dtype's machine epsilon,
    as torch), ``d`` is ``clip_threshold``; ``relative_step`` keeps Keras's name. The defaults are Keras's.

    t = t + 1;  p = p - p * weight_decay * lr        (Keras's generic decay, first, with the raw lr)
    rho = min(lr, 1 / sqrt(t));  alpha = max(epsilon_2, RMS(p)) * rho        (RMS of the decayed p)
    G = g * g + epsilon_1;  b2_t = 1 - t**beta_2_decay                      (b2_t = 0 on the first step)
    ndim >= 2 (factored over the last two axes):
        r = b2_t * r + (1 - b2_t) * mean(G, axis=-1)          shape p.shape[:-1]
        c = b2_t * c + (1 - b2_t) * mean(G, axis=-2)          shape p.shape[:-2] + p.shape[-1:]
        v = (r / mean(r, axis=-1, keepdims))[..., :, None] * c[..., None, :]
    ndim < 2:
        v = b2_t * v + (1 - b2_t) * G
    u = g / sqrt(v);  u_hat = u / max(1, RMS(u) / clip_threshold)
    p = p - alpha * u_hat

    Surprises in the source: ``relative_step`` has no effect (Keras clamps ``lr`` to ``1/sqrt(t)`` when it is
    set, and then computes ``rho = min(lr, 1/sqrt(t))`` regardless), so the step size is always
    ``min(lr, 1/sqrt(t))`` times the parameter scale and the argument is accepted and ignored here. There is no
    first-moment (beta_1) option. For factored arrays Keras also stores the full ``v`` (recomputed from r and c
    every step, never read back): it is a temporary here, so ``v`` exists in the state only for arrays with
    fewer than 2 dimensions. RMS(p) and RMS(u) are whole-array reductions; u needs the updated r (all rows)
    before RMS(u), and RMS(u) before any p changes: three passes for a kernel. Keras (torch backend) computes
    its means, RMS and max/min clamps in float32 even for float64 variables (see the module docstring).

    State: ``step``; ``r``, ``c`` (ndim >= 2) or ``v`` (ndim < 2), all starting at 0 (Keras's names).
    Source: keras/src/optimizers/adafactor.py (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost").
    """
    del relative_step  # no effect in Keras 3 (see above)
    lr, epsilon_2, clip_threshold, beta_2_decay = float(lr), float(eps[1]), float(d), float(beta2_decay)
    epsilon_1 = float(np.finfo(p.dtype).eps) if eps[0] is None else float(eps[0])
    t = _next_step(state)
    grad = -g if maximize else g
    _keras_weight_decay(p, lr, weight_decay)
    rho = min(lr, 1.0 / math.sqrt(t))
    alpha = float(np.maximum(epsilon_2, _rms(p))) * rho  # np.maximum: a NaN RMS stays NaN, as ops.maximum
    sq = grad * grad + epsilon_1
    b2_t = 1.0 - float(t) ** beta_2_decay
    if p.ndim >= 2:
        r = _full_state(state, "r", p.shape[:-1], p.dtype, 0.0)
        c = _full_state(state, "c", p.shape[:-2] + p.shape[-1:], p.dtype, 0.0)
        r[...] = b2_t * r + (1 - b2_t) * np.mean(sq, axis=-1)
        c[...] = b2_t * c + (1 - b2_t) * np.mean(sq, axis=-2)
        v = np.expand_dims(r / np.mean(r, axis=-1, keepdims=True), -1) * np.expand_dims(c, -2)
    else:
        v = _zeros_state(state, "v", p)
        v[...] = b2_t * v + (1 - b2_t) * sq
    u = grad / np.sqrt(v)
    u_hat = u / float(np.maximum(1.0, _rms(u) / clip_threshold))
    p -= alpha * u_hat


STEPS = {"Ftrl": ftrl_step, "Lion": lion_step, "Lamb": lamb_step, "KerasNadam": keras_nadam_step,
         "KerasAdafactor": keras_adafactor_step}

#: the array state entries each step may create (all shaped like p, except KerasAdafactor's r: p.shape[:-1] and
#: c: p.shape[:-2] + p.shape[-1:], kept for ndim >= 2, and its v, kept for ndim < 2)
STATE_NAMES = {"Ftrl": ("accumulator", "linear"), "Lion": ("exp_avg",), "Lamb": ("exp_avg", "exp_avg_sq"),
               "KerasNadam": ("exp_avg", "exp_avg_sq"), "KerasAdafactor": ("r", "c", "v")}

#: the Python-float state entries besides ``step``
SCALAR_STATE_NAMES = {"KerasNadam": ("u_product",)}
