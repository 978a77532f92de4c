"""RMSprop, plain and centered, with momentum."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop (torch.optim.RMSprop).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        s_t &= \alpha s_{t-1} + (1 - \alpha) g_t^2, \quad
        a_t = \alpha a_{t-1} + (1 - \alpha) g_t \text{ (centered)} \\
        d_t &= \sqrt{s_t - a_t^2} + \epsilon \text{ (centered) else } \sqrt{s_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t,\ \theta_t = \theta_{t-1} - \gamma b_t \quad (\mu > 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t \quad \text{(otherwise)}

    Symbols: :math:`\gamma` ``lr``, :math:`\alpha` ``alpha``, :math:`\epsilon` ``eps``
    (outside the square root, as torch), :math:`\mu` ``momentum``, :math:`\lambda` ``weight_decay``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-2). alpha: smoothing constant (0.99). eps: (1e-8). weight_decay: (0).
        momentum: (0). centered: normalize by the estimated variance (False).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.RMSprop(params, lr=1e-3, centered=True)

    State: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0), ``step``.
    References: Hinton, Lecture 6e, 2012; Graves, "Generating sequences with RNNs", 2013.
    """

    kernel = "rmsprop"
    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    alpha=real(f"alpha value ({where})", group["alpha"], low=0.0),
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    momentum=real(f"momentum value ({where})", group["momentum"], low=0.0),
                    centered=flag(f"centered ({where})", group["centered"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _required_states(self, group):
        names = ["square_avg"]
        if group["centered"]:
            names.append("grad_avg")
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        return tuple(names)

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        alpha = h["alpha"]
        use_buf = h["momentum"] > 0
        return (h["lr"], alpha, 1.0 - alpha, h["eps"], h["weight_decay"], h["momentum"],
                1.0 if use_buf else -h["lr"], h["centered"], use_buf)
