"""Adan, optax's formulation."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


def _three_betas(value, where):
    try:
        b = tuple(value)
    except TypeError:
        b = ()
    if len(b) != 3:
        raise TypeError(f"{where} betas must be a triple (beta1, beta2, beta3), got {value!r}")
    return tuple(real(f"beta parameter at index {k} ({where} betas[{k}])", x, low=0.0, high=1.0, high_open=True)
                 for k, x in enumerate(b))


class Adan(Optimizer):
    r"""Adan: adaptive Nesterov momentum from gradient differences (optax.adan).

    .. math::
        d_t &= g_t - g_{t-1} \quad (d_1 = 0) \\
        m_t &= (1 - \beta_1) g_t + \beta_1 m_{t-1}, \quad v_t = (1 - \beta_2) d_t + \beta_2 v_{t-1} \\
        n_t &= (1 - \beta_3) (g_t + (1 - \beta_2) d_t)^2 + \beta_3 n_{t-1} \\
        u_t &= \frac{m_t / (1 - \beta_1^t) + (1 - \beta_2) v_t / (1 - \beta_2^t)}
            {\sqrt{n_t / (1 - \beta_3^t) + \epsilon_r} + \epsilon} \\
        \theta_t &= \theta_{t-1} - \gamma (u_t + \lambda \theta_{t-1})

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2,3}` ``betas`` (the weights of the OLD values,
    as optax and the official code; the paper writes 1 - beta), :math:`\epsilon` ``eps``,
    :math:`\epsilon_r` ``eps_root``, :math:`\lambda` ``weight_decay``; :math:`m` ``exp_avg``,
    :math:`v` ``exp_avg_diff``, :math:`n` ``exp_avg_sq``, :math:`g_{t-1}` ``pre_grad`` (all start at 0).

    .. warning::
       optax's conventions: all three moments are bias-corrected (v too, though d_1 = 0: no
       g - 0 on the first step); the weight decay is added to the update (AdamW-style), not the
       paper's proximal ``(p - lr u) / (1 + lr wd)``; eps_root defaults to 1e-8. optax has no
       default learning rate (1e-3 here).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-3). betas: (0.98, 0.92, 0.99). eps: (1e-8). eps_root: (1e-8). weight_decay: (0).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adan(params, lr=1e-3, weight_decay=0.02)

    State: ``exp_avg``, ``exp_avg_diff``, ``exp_avg_sq``, ``pre_grad``, ``step``.
    References: Xie et al., "Adan: adaptive Nesterov momentum algorithm for faster optimizing deep
    models", 2022.
    """

    kernel = "adan"
    state_names = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "pre_grad")

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, eps_root=1e-8, weight_decay=0.0, *,
                 maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2, b3 = _three_betas(group["betas"], where)
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), b1=b1, b2=b2, b3=b3,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    eps_root=real(f"eps_root value ({where})", group["eps_root"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return (1.0 - h["b1"] ** step, 1.0 - h["b2"] ** step, 1.0 - h["b3"] ** step, step == 1)

    def _static_scalars(self, h):
        b1, b2, b3 = h["b1"], h["b2"], h["b3"]
        return (h["lr"], h["eps"], h["eps_root"], b1, 1 - b1, b2, 1 - b2, b3, 1 - b3, h["weight_decay"])
