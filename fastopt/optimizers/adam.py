"""Adam, AdamW and AMSGrad."""
from __future__ import annotations

from fastopt._validate import betas, flag, real
from fastopt.optimizers.base import Optimizer


class Adam(Optimizer):
    r"""Adam with optional AMSGrad and L2 weight decay (torch.optim.Adam).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (amsgrad) else } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \cdot
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``. Bias corrections are computed in double per step.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3). betas: (0.9, 0.999). eps: added to the denominator (1e-8).
        weight_decay: L2 penalty (0; AdamW decouples it). amsgrad: use the running max of v.
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adam(flat, lr=3e-4)
        >>> opt.step(grad_flat)

    State: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad), ``step``.
    References: Kingma & Ba, "Adam", 2015; Reddi et al., "On the convergence of Adam and beyond", 2018.
    """

    kernel = "adam"
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    b1=b1, b2=b2,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    amsgrad=flag(f"amsgrad ({where})", group["amsgrad"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _required_states(self, group):
        if group["amsgrad"]:
            return self.state_names
        return self.state_names[:2]

    def _scalars(self, h, step):
        # torch: step_size = lr / bias_correction1, bias_correction2 ** 0.5, in double
        return (h["lr"] / (1.0 - h["b1"] ** step), (1.0 - h["b2"] ** step) ** 0.5)

    def _static_scalars(self, h):
        lr, b1, b2, wd = h["lr"], h["b1"], h["b2"], h["weight_decay"]
        if self.decoupled:
            l2, decay = 0.0, 1.0 - lr * wd
        else:
            l2, decay = wd, 1.0
        return (h["eps"], 1.0 - b1, b2, 1.0 - b2, l2, decay, h["amsgrad"])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (torch.optim.AdamW).

    As ``Adam``, except that instead of adding :math:`\lambda\theta` to the gradient the
    parameters decay first: :math:`\theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)`.
    Default ``weight_decay`` is 1e-2.

    Example:
        >>> opt = fastopt.AdamW(params, lr=1e-3, weight_decay=0.05)

    References: Loshchilov & Hutter, "Decoupled weight decay regularization", 2019.
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, **kwargs)
