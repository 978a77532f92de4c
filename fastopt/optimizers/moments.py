"""Yogi and AdaBelief: optax's Adam-like rules with another second moment (one kernel)."""
from __future__ import annotations

from fastopt._validate import betas, flag, real
from fastopt.optimizers.base import Optimizer


class _Moments(Optimizer):
    """The shared class of the ``moments`` kernel; subclasses set ``belief`` and the states."""

    kernel = "moments"
    belief = False

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), b1=b1, b2=b2,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    eps_root=real(f"eps_root value ({where})", group["eps_root"], low=0.0),
                    nesterov=flag(f"nesterov ({where})", group.get("nesterov", False)),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        b1 = h["b1"]
        return (1.0 - b1 ** step, 1.0 - b1 ** (step + 1), 1.0 - h["b2"] ** step)

    def _static_scalars(self, h):
        b1, b2, eps_root = h["b1"], h["b2"], h["eps_root"]
        # Yogi adds eps_root under the square root, AdaBelief to the stored second moment
        sqrt_eps, acc_eps = (0.0, eps_root) if self.belief else (eps_root, 0.0)
        return (h["lr"], h["eps"], sqrt_eps, b1, 1 - b1, b2, 1 - b2, acc_eps, self.belief, h["nesterov"])


class Yogi(_Moments):
    r"""Yogi: Adam with an additive, sign-controlled second moment (optax.yogi).

    .. math::
        m_t &= (1 - \beta_1) g_t + \beta_1 m_{t-1} \\
        v_t &= v_{t-1} - (1 - \beta_2) \operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma \frac{m_t / (1 - \beta_1^t)}
            {\sqrt{v_t / (1 - \beta_2^t) + \epsilon_r} + \epsilon}

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\epsilon_r` ``eps_root``; :math:`m` ``exp_avg`` and :math:`v` ``exp_avg_sq`` both start
    at ``initial_accumulator_value``. Bias corrections are computed in double per step.

    .. warning::
       optax's conventions: both moments start at ``initial_accumulator_value`` (1e-6), not only
       v as in the paper, and both are bias-corrected as Adam's although they do not start at 0;
       ``eps`` defaults to 1e-3. optax has no default learning rate (1e-3 here) and no weight decay.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-3). betas: (0.9, 0.999). eps: (1e-3). eps_root: (0). initial_accumulator_value: (1e-6).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Yogi(params, lr=1e-2)

    State: ``exp_avg``, ``exp_avg_sq``, ``step``.
    References: Zaheer et al., "Adaptive methods for nonconvex optimization", NeurIPS 2018.
    """

    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6,
                 *, maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        h = super()._check_hyper(group, where)
        h["initial_accumulator_value"] = real(f"initial_accumulator_value ({where})",
                                              group["initial_accumulator_value"], low=0.0)
        return h

    def _state_init(self, name, group):
        return float(group["initial_accumulator_value"])


class AdaBelief(_Moments):
    r"""AdaBelief: Adam with the variance of the gradient around its mean (optax.adabelief).

    .. math::
        m_t &= (1 - \beta_1) g_t + \beta_1 m_{t-1} \\
        s_t &= (1 - \beta_2) (g_t - m_t)^2 + \beta_2 s_{t-1} + \epsilon_r \\
        \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \text{ or (nesterov) }
            \frac{\beta_1 m_t}{1 - \beta_1^{t+1}} + \frac{(1 - \beta_1) g_t}{1 - \beta_1^t} \\
        \theta_t &= \theta_{t-1} - \gamma \frac{\hat m_t}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\epsilon_r` ``eps_root``; :math:`m` ``exp_avg`` and :math:`s` ``exp_avg_var`` start at 0.

    .. warning::
       optax's conventions: ``eps_root`` is added to the STORED s every step (it accumulates, to
       eps_root / (1 - beta2) without gradient noise); eps defaults to 1e-16. optax has no default
       learning rate (1e-3 here) and no weight decay.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-3). betas: (0.9, 0.999). eps: (1e-16). eps_root: (1e-16). nesterov: Nesterov's
        first moment (False). maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend:
        see ``Optimizer``.

    Example:
        >>> opt = fastopt.AdaBelief(params, lr=1e-3, nesterov=True)

    State: ``exp_avg``, ``exp_avg_var``, ``step``.
    References: Zhuang et al., "AdaBelief optimizer: adapting stepsizes by the belief in observed
    gradients", NeurIPS 2020.
    """

    state_names = ("exp_avg", "exp_avg_var")
    belief = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, nesterov=False, *,
                 maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, **kwargs)
