"""Stochastic gradient descent with momentum and Nesterov momentum."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class SGD(Optimizer):
    r"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        b_t &= \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1) \\
        g_t &= g_t + \mu b_t \text{ (nesterov) else } b_t \quad (\mu \ne 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t

    Symbols: :math:`\gamma` ``lr``, :math:`\mu` ``momentum``, :math:`\tau` ``dampening``,
    :math:`\lambda` ``weight_decay``; with ``maximize`` the gradient's sign flips first.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3). momentum: momentum factor (0). dampening: dampening of the
        momentum (0). weight_decay: L2 penalty (0). nesterov: Nesterov momentum (False).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.SGD([w, b], lr=0.1, momentum=0.9, nesterov=True)
        >>> opt.step([dw, db])

    State: ``momentum_buffer`` (when momentum != 0).
    References: Sutskever et al., "On the importance of initialization and momentum", 2013.
    """

    kernel = "sgd"
    state_names = ("momentum_buffer",)
    counts_steps = False

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        h = dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                 momentum=real(f"momentum ({where})", group["momentum"], low=0.0),
                 dampening=real(f"dampening ({where})", group["dampening"]),
                 weight_decay=real(f"weight_decay ({where})", group["weight_decay"], low=0.0),
                 nesterov=flag(f"nesterov ({where})", group["nesterov"]),
                 maximize=flag(f"maximize ({where})", group["maximize"]))
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening ({where})")
        return h

    def _required_states(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _state_before_first_step(self):
        return False

    def _on_new_state(self, g, names):
        # momentum switched on mid-training: torch starts the buffer as a copy of the next
        # gradient; the (internal only) step count drives that first-step rule
        for p in self._group_params[g]:
            self._steps[p.index] = 0

    def _scalars(self, h, step):
        mom = h["momentum"]
        if step == 1:  # torch clones the gradient into a new buffer: 0 * 0 + 1 * g
            return (h["lr"], mom, 0.0, 1.0)
        return (h["lr"], mom, mom, 1.0 - h["dampening"])

    def _static_scalars(self, h):
        return (h["weight_decay"], h["momentum"] != 0, h["nesterov"])
