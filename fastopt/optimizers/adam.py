"""Adam, AdamW and AMSGrad."""
from __future__ import annotations

import math

from fastopt._validate import betas, flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, keras_decay, resolve
from fastopt.optimizers.base import Optimizer


class Adam(Optimizer):
    r"""Adam with optional AMSGrad and L2 weight decay (torch.optim.Adam), or Keras 3's Adam
    (``convention="keras"``).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (amsgrad) else } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t} \cdot
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``convention="keras"``: :math:`\theta \leftarrow \theta - \theta\lambda\gamma` first (decoupled),
    :math:`g_t = \nabla_t`, the same moments, and
    :math:`\theta_t = \theta_{t-1} - \gamma \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t} \cdot
    \frac{m_t}{\sqrt{\hat v_t} + \epsilon}`.

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``. Bias corrections are computed in double per step.

    .. warning::
       ``convention="keras"`` (keras.optimizers.Adam) changes the rule, not only the defaults:
       Keras's "epsilon hat" adds ``eps`` to the uncorrected :math:`\sqrt{\hat v_t}` and folds both
       bias corrections into the step size :math:`\alpha_t`, so the same ``eps`` weighs
       :math:`1/\sqrt{1 - \beta_2^t}` times more than torch's (and the default is Keras's 1e-7); the
       moments are written ``m + (g - m) * (1 - b1)`` and ``v + (g * g - v) * (1 - b2)``; amsgrad keeps
       the running max of ``v`` as torch does. ``weight_decay`` is Keras's decoupled decay
       ``p - p * wd * lr`` applied before the update (torch's Adam adds an L2 term to the gradient).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3). betas: (0.9, 0.999). eps: added to the denominator (1e-8; Keras:
        1e-7). weight_decay: L2 penalty (0; AdamW decouples it; Keras: decoupled decay).
        amsgrad: use the running max of v. convention: ``"torch"`` or ``"keras"`` (keyword-only).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adam(flat, lr=3e-4)
        >>> opt.step(grad_flat)
        >>> keras_like = fastopt.Adam(flat, lr=3e-4, convention="keras")  # eps 1e-7, epsilon hat

    State: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad), ``step`` (Keras's momentum,
    velocity, velocity_hat, iterations + 1).
    References: Kingma & Ba, "Adam", 2015; Reddi et al., "On the convergence of Adam and beyond", 2018;
    keras/src/optimizers/adam.py (Keras 3).
    """

    kernel = "adam"
    state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=ConventionDefault(1e-8, 1e-7), weight_decay=0.0,
                 amsgrad=False, *, maximize=False, convention="torch", **kwargs):
        convention = check_convention(convention)
        defaults = dict(lr=lr, betas=betas, eps=resolve(convention, eps),
                        weight_decay=resolve(convention, weight_decay), amsgrad=amsgrad, maximize=maximize,
                        convention=convention)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    b1=b1, b2=b2,
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    amsgrad=flag(f"amsgrad ({where})", group["amsgrad"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]),
                    convention=check_convention(group["convention"], where))

    def _required_states(self, group):
        if group["amsgrad"]:
            return self.state_names
        return self.state_names[:2]

    def _scalars(self, h, step):
        if h["convention"] == "keras":  # alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); sqrt(v) uncorrected
            return (h["lr"] * math.sqrt(1.0 - h["b2"] ** step) / (1.0 - h["b1"] ** step), 1.0)
        # torch: step_size = lr / bias_correction1, bias_correction2 ** 0.5, in double
        return (h["lr"] / (1.0 - h["b1"] ** step), (1.0 - h["b2"] ** step) ** 0.5)

    def _static_scalars(self, h):
        lr, b1, b2, wd = h["lr"], h["b1"], h["b2"], h["weight_decay"]
        keras = h["convention"] == "keras"
        if keras:
            l2, decay = 0.0, 1.0
        elif self.decoupled:
            l2, decay = 0.0, 1.0 - lr * wd
        else:
            l2, decay = wd, 1.0
        kwd, klr, kdecay = keras_decay(h)
        return (h["eps"], 1.0 - b1, b2, 1.0 - b2, l2, decay, kwd, klr, h["amsgrad"], keras, kdecay)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (torch.optim.AdamW), or Keras 3's AdamW
    (``convention="keras"``).

    As ``Adam``, except that instead of adding :math:`\lambda\theta` to the gradient the
    parameters decay first: :math:`\theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)`.
    Default ``weight_decay`` is 1e-2 (Keras: 0.004).

    .. warning::
       ``convention="keras"`` (keras.optimizers.AdamW, which is Keras's Adam with a required weight
       decay) is ``Adam(convention="keras")``: Keras's epsilon hat (``eps`` on the uncorrected
       :math:`\sqrt{\hat v_t}`, default 1e-7) and moment forms, and the decay written
       ``p - p * wd * lr`` (torch: ``p * (1 - lr * wd)``), default ``weight_decay`` 0.004.

    Example:
        >>> opt = fastopt.AdamW(params, lr=1e-3, weight_decay=0.05)
        >>> keras_like = fastopt.AdamW(params, convention="keras")  # weight_decay 0.004, eps 1e-7

    References: Loshchilov & Hutter, "Decoupled weight decay regularization", 2019;
    keras/src/optimizers/adamw.py (Keras 3).
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=ConventionDefault(1e-8, 1e-7),
                 weight_decay=ConventionDefault(1e-2, 0.004), amsgrad=False, *, maximize=False,
                 convention="torch", **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, convention=convention, **kwargs)
