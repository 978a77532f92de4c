"""LARS: SGD with momentum, each array's step scaled by a trust ratio (optax.lars)."""
from __future__ import annotations

import math

from fastopt import _backends
from fastopt._validate import flag, real
from fastopt.optimizers._per_array import LANES, PerArrayOptimizer


class LARS(PerArrayOptimizer):
    r"""LARS, layer-wise adaptive rate scaling (optax.lars, both masks True).

    .. math::
        d_t &= g_t + \lambda \theta_{t-1}, \quad
        \rho = \frac{\eta \lVert\theta_{t-1}\rVert}{\lVert d_t\rVert + \epsilon}
        \text{ (1 if either norm is 0)} \\
        u_t &= \gamma \rho\, d_t, \quad b_t = u_t + \mu b_{t-1} \quad (b_0 = 0) \\
        \theta_t &= \theta_{t-1} - (u_t + \mu b_t \text{ (nesterov) else } b_t)
        \quad (\mu \ne 0;\ \text{else } \theta_t = \theta_{t-1} - u_t)

    Symbols: :math:`\gamma` ``lr``, :math:`\lambda` ``weight_decay``, :math:`\eta`
    ``trust_coefficient``, :math:`\epsilon` ``eps``, :math:`\mu` ``momentum``. The norms are of
    each WHOLE parameter array, accumulated in float64. The buffer holds optax's ``trace`` negated
    (the learning rate and the ratio are inside it). A NaN norm gives a NaN ratio (optax tests
    only ``== 0``).

    Each array takes two passes: one reduction over p and g together (both norms), then the
    fused update.

    .. warning::
       The trust ratio is per parameter array. Views of one ``fastopt.flatten`` buffer are
       separate arrays (one ratio each, one kernel call each); ONE flat buffer passed as the only
       parameter gets ONE ratio for the whole model. Pass the views (their shapes are used).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3; optax has no default). weight_decay: added to the gradient
        before the ratio (0). trust_coefficient: :math:`\eta` (0.001). eps: added to the
        gradient's norm (0). momentum: (0.9; 0 keeps no buffer). nesterov: Nesterov momentum (False).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, gradient_accumulation_steps,
        backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.LARS([w, b], lr=0.1, weight_decay=1e-4, nesterov=True)
        >>> opt.step([dw, db])

    State: ``momentum_buffer`` (momentum != 0), ``step``.
    References: You et al., "Large Batch Training of Convolutional Networks", 2017;
    optax/_src/alias.py ``lars`` (optax 0.2.8).
    """

    kernel = "lars_norms"
    state_names = ("momentum_buffer",)
    #: the statistics pass reads p and g once more
    extra_words_per_element = 2

    def __init__(self, params, lr=1e-3, weight_decay=0.0, trust_coefficient=0.001, eps=0.0, momentum=0.9,
                 nesterov=False, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
                        momentum=momentum, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    trust_coefficient=real(f"trust_coefficient ({where})", group["trust_coefficient"], low=0.0),
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    momentum=real(f"momentum ({where})", group["momentum"], low=0.0),
                    nesterov=flag(f"nesterov ({where})", group["nesterov"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _required_states(self, group):
        return self.state_names if group["momentum"] != 0 else ()

    def _state_shape(self, name, p, group):
        # a buffer left from a group that had momentum (a state_dict without it loaded over the
        # default momentum of 0.9) is not state: momentum 0 keeps none, as optax's alias
        if name == "momentum_buffer" and group.get("momentum") == 0:
            return None
        return super()._state_shape(name, p, group)

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        return (h["lr"], h["weight_decay"], h["trust_coefficient"], h["eps"], h["momentum"], h["momentum"] != 0,
                h["nesterov"])

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):
        lr, wd, tc, eps, momentum, use_buf, nesterov = scalars
        acc, ema, acc_s, ema_m, ema_c, accumulate, use_ema, ftz = tail
        work = self._vector_work(call)
        call.named("lars_norms", nchunks > 1)(call.p, g, wd, acc, acc_s, accumulate, scale, clip, work,
                                              _backends.NORM_CHUNK, LANES, ftz)
        p_norm, d_norm = math.sqrt(work[-2]), math.sqrt(work[-1])
        ratio = 1.0 if p_norm == 0 or d_norm == 0 else tc * p_norm / (d_norm + eps)
        # with accumulation the first pass left the window's sum in acc: the update reads it there
        call.named("lars_update", nchunks > 1)(call.p, g, call.states[0], wd, ratio, lr, momentum, use_buf,
                                               nesterov, acc, ema, ema_m, ema_c, accumulate, use_ema, scale,
                                               clip, nchunks, ftz)
