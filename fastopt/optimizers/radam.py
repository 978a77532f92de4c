"""RAdam (rectified Adam) and RAdamW."""
from __future__ import annotations

from fastopt._validate import betas, flag, real
from fastopt.optimizers.base import Optimizer


class RAdam(Optimizer):
    r"""RAdam: Adam whose adaptive step is switched on, and rectified, once the variance of
    its estimate is tractable (torch.optim.RAdam; RAdamW with ``decoupled_weight_decay``).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1}
            \quad (\text{decoupled: } \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
            v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \rho_\infty &= \frac{2}{1 - \beta_2} - 1, \quad
            \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
        \theta_t &= \theta_{t-1} - \gamma \frac{m_t}{1 - \beta_1^t}\, r_t\,
            \frac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon} \quad (\rho_t > 5), \qquad
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        \theta_t &= \theta_{t-1} - \gamma \frac{m_t}{1 - \beta_1^t} \quad \text{(otherwise: momentum SGD)}

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``. The branch depends on :math:`t` only: it is chosen per step
    (in double, with :math:`r_t`), for every element alike. With the default
    :math:`\beta_2 = 0.999` the first five steps are not rectified; with
    :math:`\beta_2 \le 0.6` (:math:`\rho_\infty \le 4`) no step is.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3). betas: (0.9, 0.999). eps: (1e-8).
        weight_decay: (0): L2 penalty, or decoupled with ``decoupled_weight_decay`` (False).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.RAdam(params, lr=1e-3, weight_decay=0.01, decoupled_weight_decay=True)
        >>> opt.step(grads)

    State: ``exp_avg`` (m), ``exp_avg_sq`` (v), ``step``.
    References: Liu et al., "On the variance of the adaptive learning rate and beyond", ICLR 2020.
    """

    kernel = "radam"
    state_names = ("exp_avg", "exp_avg_sq")
    #: decoupled_weight_decay is a group option here: a torch state_dict's value always loads
    decoupled = None

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), b1=b1, b2=b2,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    decoupled=flag(f"decoupled_weight_decay ({where})", group["decoupled_weight_decay"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        b1, b2 = h["b1"], h["b2"]
        bc1 = 1 - b1 ** step
        bc2 = 1 - b2 ** step
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * step * (b2 ** step) / bc2
        if rho_t > 5.0:  # torch's expressions, in its grouping
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            return (bc1, bc2 ** 0.5, rect, True)
        return (bc1, bc2 ** 0.5, 1.0, False)

    def _static_scalars(self, h):
        lr, wd, b1, b2 = h["lr"], h["weight_decay"], h["b1"], h["b2"]
        l2, decay = (0.0, 1.0 - lr * wd) if h["decoupled"] else (wd, 1.0)
        return (lr, 1.0, h["eps"], 1.0 - b1, b2, 1.0 - b2, l2, decay)
