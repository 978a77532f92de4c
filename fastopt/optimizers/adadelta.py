"""Adadelta."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class Adadelta(Optimizer):
    r"""Adadelta: a per-element step size from running averages of squared gradients and
    squared updates (torch.optim.Adadelta).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        v_t &= \rho v_{t-1} + (1 - \rho) g_t^2 \\
        \Delta_t &= \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}}\, g_t \\
        u_t &= \rho u_{t-1} + (1 - \rho) \Delta_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma \Delta_t

    Symbols: :math:`\gamma` ``lr``, :math:`\rho` ``rho``, :math:`\epsilon` ``eps`` (inside
    both square roots, as torch), :math:`\lambda` ``weight_decay``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: scales the update (1.0). rho: decay of both running averages (0.9).
        eps: (1e-6). weight_decay: L2 penalty (0).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adadelta(params, rho=0.95)
        >>> opt.step(grads)

    State: ``square_avg`` (v), ``acc_delta`` (u), ``step``.
    References: Zeiler, "ADADELTA: an adaptive learning rate method", 2012.
    """

    kernel = "adadelta"
    state_names = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    rho=real(f"rho value ({where})", group["rho"], low=0.0, high=1.0),
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        rho = h["rho"]
        return (h["lr"], rho, 1.0 - rho, h["eps"], h["weight_decay"])
