"""LAMB: Adam's direction scaled per array by a trust ratio (Keras 3's Lamb)."""
from __future__ import annotations

import math

from fastopt import _backends
from fastopt._validate import betas, flag, real
from fastopt.optimizers._per_array import LANES, PerArrayOptimizer


class Lamb(PerArrayOptimizer):
    r"""LAMB, layer-wise adaptive moments (keras.optimizers.Lamb).

    .. math::
        \theta &\leftarrow \theta - \theta \lambda \gamma \quad \text{(Keras's decoupled decay, first)} \\
        m_t &= m_{t-1} + (g_t - m_{t-1})(1 - \beta_1), \quad
        v_t = v_{t-1} + (g_t^2 - v_{t-1})(1 - \beta_2) \\
        r_t &= \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}, \quad
        \rho = \frac{\lVert\theta\rVert}{\lVert r_t\rVert} \text{ (1 if either norm is 0)} \\
        \theta_t &= \theta - \gamma \rho\, r_t

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``. The norms are of each WHOLE parameter array, accumulated in
    float64; the weight decay comes before the update and outside the trust ratio (as Keras does;
    the paper and optax.lamb put it inside).

    Each array takes two passes: the first updates m, v and sums :math:`\lVert r\rVert^2` and
    :math:`\lVert\theta\rVert^2`; the second recomputes r from m, v and updates the parameter.

    .. warning::
       The trust ratio is per parameter array. Views of one ``fastopt.flatten`` buffer are
       separate arrays (one ratio each, one kernel call each); ONE flat buffer passed as the only
       parameter gets ONE ratio for the whole model. Pass the views (their shapes are used).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3). betas: (0.9, 0.999). eps: added to the denominator (1e-7, Keras's).
        weight_decay: Keras's decoupled decay ``p - p * wd * lr`` before the update (0).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, gradient_accumulation_steps,
        backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Lamb([w, b], lr=1e-3, weight_decay=0.01)
        >>> opt.step([dw, db])

    State: ``exp_avg`` (Keras's momentums), ``exp_avg_sq`` (velocities), ``step``.
    References: You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes", 2019; keras/src/optimizers/lamb.py (Keras 3).
    """

    kernel = "lamb_norms"
    state_names = ("exp_avg", "exp_avg_sq")
    #: pass 2 re-reads p, m, v (pass 1 reads p without writing it): 10 words per element in all
    extra_words_per_element = 3

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, *, maximize=False,
                 **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), b1=b1, b2=b2,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return (1.0 - h["b1"] ** step, 1.0 - h["b2"] ** step)

    def _static_scalars(self, h):
        wd = h["weight_decay"]
        return (h["lr"], 1.0 - h["b1"], 1.0 - h["b2"], h["eps"], wd, wd != 0)

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):
        bc1, bc2, lr, c1, c2, eps, wd, decay = scalars
        acc, ema, acc_s, ema_m, ema_c, accumulate, use_ema, ftz = tail
        m, v = call.states
        work = self._vector_work(call)
        call.named("lamb_norms", nchunks > 1)(call.p, g, m, v, c1, c2, bc1, bc2, eps, wd, lr, decay, acc,
                                              acc_s, accumulate, scale, clip, work, _backends.NORM_CHUNK,
                                              LANES, ftz)
        r_norm, p_norm = math.sqrt(work[-2]), math.sqrt(work[-1])
        ratio = p_norm / r_norm if p_norm > 0 and r_norm > 0 else 1.0  # Keras: where(norm > 0, ...)
        call.named("lamb_update", nchunks > 1)(call.p, m, v, bc1, bc2, eps, wd, lr, decay, ratio * lr, ema,
                                               ema_m, ema_c, use_ema, nchunks, ftz)
