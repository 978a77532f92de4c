"""Adamax."""
from __future__ import annotations

from fastopt._validate import betas, flag, real
from fastopt.optimizers.base import Optimizer


class Adamax(Optimizer):
    r"""Adamax: Adam with the infinity norm in place of the second moment (torch.optim.Adamax).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &= \max(\beta_2 u_{t-1}, |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \cdot \frac{m_t}{u_t}

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``
    (inside the maximum, as torch), :math:`\lambda` ``weight_decay``. A NaN in either operand
    of the maximum propagates (torch.maximum).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (2e-3). betas: (0.9, 0.999). eps: (1e-8). weight_decay: L2 penalty (0).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adamax(params, lr=1e-3)
        >>> opt.step(grads)

    State: ``exp_avg`` (m), ``exp_inf`` (u), ``step``.
    References: Kingma & Ba, "Adam: a method for stochastic optimization", 2015, section 7.
    """

    kernel = "adamax"
    state_names = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False,
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
        return (h["lr"] / (1.0 - h["b1"] ** step),)

    def _static_scalars(self, h):
        return (h["eps"], 1.0 - h["b1"], h["b2"], h["weight_decay"])
