"""Adagrad."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad with learning-rate decay (torch.optim.Adagrad).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1}, \quad
        \tilde\gamma_t = \gamma / (1 + (t - 1)\eta) \\
        s_t &= s_{t-1} + g_t^2 \quad (s_0 = \text{initial\_accumulator\_value}) \\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    Symbols: :math:`\gamma` ``lr``, :math:`\eta` ``lr_decay``, :math:`\lambda` ``weight_decay``,
    :math:`\epsilon` ``eps`` (outside the square root, as torch).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-2). lr_decay: (0). weight_decay: (0). initial_accumulator_value: (0).
        eps: (1e-10). maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adagrad(params, lr=0.1, initial_accumulator_value=0.1)

    State: ``sum``, ``step`` (present from construction, as in torch).
    References: Duchi, Hazan & Singer, "Adaptive subgradient methods", JMLR 2011.
    """

    kernel = "adagrad"
    state_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    lr_decay=real(f"lr_decay value ({where})", group["lr_decay"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    initial_accumulator_value=real(f"initial_accumulator_value ({where})",
                                                   group["initial_accumulator_value"], low=0.0),
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _state_init(self, name, group):
        return float(group["initial_accumulator_value"])

    def _state_before_first_step(self):
        return True

    def _scalars(self, h, step):
        return (h["lr"] / (1.0 + (step - 1) * h["lr_decay"]),)

    def _static_scalars(self, h):
        return (h["eps"], h["weight_decay"])
