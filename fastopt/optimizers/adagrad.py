"""Adagrad."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, keras_decay, resolve
from fastopt.optimizers.base import Optimizer


class Adagrad(Optimizer):
    r"""Adagrad with learning-rate decay (torch.optim.Adagrad), or Keras 3's Adagrad
    (``convention="keras"``).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1}, \quad
        \tilde\gamma_t = \gamma / (1 + (t - 1)\eta) \\
        s_t &= s_{t-1} + g_t^2 \quad (s_0 = \text{initial\_accumulator\_value}) \\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    ``convention="keras"``: :math:`\theta \leftarrow \theta - \theta\lambda\gamma` first (decoupled),
    then :math:`s_t = s_{t-1} + \nabla_t^2`,
    :math:`\theta_t = \theta_{t-1} - \gamma \nabla_t / \sqrt{s_t + \epsilon}`.

    Symbols: :math:`\gamma` ``lr``, :math:`\eta` ``lr_decay``, :math:`\lambda` ``weight_decay``,
    :math:`\epsilon` ``eps`` (outside the square root, as torch).

    .. warning::
       ``convention="keras"`` (keras.optimizers.Adagrad) changes the rule, not only the defaults:
       ``eps`` goes inside the square root (``sqrt(sum + eps)``), the accumulator starts at Keras's
       ``initial_accumulator_value=0.1`` (torch: 0), ``lr_decay`` must be 0 (Keras has none), and
       ``weight_decay`` is Keras's decoupled decay ``p - p * wd * lr`` applied before the update
       (torch's is an L2 term). The defaults are Keras's: ``lr=1e-3``, ``eps=1e-7``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-2; Keras: 1e-3). lr_decay: (0). weight_decay: (0; Keras: decoupled decay).
        initial_accumulator_value: (0; Keras: 0.1). eps: (1e-10; Keras: 1e-7). convention:
        ``"torch"`` or ``"keras"`` (keyword-only). maximize, clipnorm, clipvalue, global_clipnorm,
        backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adagrad(params, lr=0.1, initial_accumulator_value=0.1)
        >>> keras_like = fastopt.Adagrad(params, lr=0.1, convention="keras")  # accumulator 0.1

    State: ``sum`` (Keras's accumulator), ``step`` (present from construction, as in torch).
    References: Duchi, Hazan & Singer, "Adaptive subgradient methods", JMLR 2011;
    keras/src/optimizers/adagrad.py (Keras 3).
    """

    kernel = "adagrad"
    state_names = ("sum",)

    def __init__(self, params, lr=ConventionDefault(1e-2, 1e-3), lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=ConventionDefault(0.0, 0.1), eps=ConventionDefault(1e-10, 1e-7), *,
                 maximize=False, convention="torch", **kwargs):
        convention = check_convention(convention)
        defaults = dict(lr=resolve(convention, lr), lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=resolve(convention, initial_accumulator_value),
                        eps=resolve(convention, eps), maximize=maximize, convention=convention)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        h = dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                 lr_decay=real(f"lr_decay value ({where})", group["lr_decay"], low=0.0),
                 weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                 initial_accumulator_value=real(f"initial_accumulator_value ({where})",
                                                group["initial_accumulator_value"], low=0.0),
                 eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                 maximize=flag(f"maximize ({where})", group["maximize"]),
                 convention=check_convention(group["convention"], where))
        if h["convention"] == "keras" and h["lr_decay"] != 0:
            raise ValueError(f"lr_decay must be 0 with convention='keras' (Keras's Adagrad has none) ({where})")
        return h

    def _state_init(self, name, group):
        return float(group["initial_accumulator_value"])

    def _state_before_first_step(self):
        return True

    def _scalars(self, h, step):
        return (h["lr"] / (1.0 + (step - 1) * h["lr_decay"]),)

    def _static_scalars(self, h):
        kwd, klr, kdecay = keras_decay(h)
        if h["convention"] == "keras":  # eps inside the root; no L2 term
            return (h["eps"], 0.0, 0.0, kwd, klr, kdecay)
        return (0.0, h["eps"], h["weight_decay"], kwd, klr, kdecay)
