"""FTRL-Proximal, Keras's formulation."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class Ftrl(Optimizer):
    r"""FTRL-Proximal with L1, L2 and shrinkage regularization (keras.optimizers.Ftrl).

    .. math::
        \theta &\leftarrow \theta - \gamma\lambda\theta \quad \text{(Keras's decoupled decay, first)} \\
        g_s &= g + 2 \lambda_s \theta, \quad n_t = n_{t-1} + g^2 \\
        z_t &= z_{t-1} + g_s - \frac{n_t^{-c} - n_{t-1}^{-c}}{\gamma} \theta \\
        \theta &= \frac{\operatorname{clip}(z_t, -\lambda_1, \lambda_1) - z_t}
            {n_t^{-c} / \gamma + 2 (\lambda_2 + \beta / (2\gamma))}

    Symbols: :math:`\gamma` ``lr``, :math:`c` ``learning_rate_power``, :math:`n` the ``accumulator``
    (starting at ``initial_accumulator_value``), :math:`z` the ``linear`` state, :math:`\lambda_1`
    ``l1``, :math:`\lambda_2` ``l2``, :math:`\lambda_s` ``l2_shrinkage``, :math:`\beta` ``beta``,
    :math:`\lambda` ``weight_decay``. The new parameter depends on the old one only through
    :math:`z`: FTRL overwrites the parameters each step.

    .. warning::
       Keras's conventions, not torch's (torch has no FTRL): ``weight_decay`` is Keras's generic
       decoupled decay ``p -= p * weight_decay * lr``, applied before the update; ``l1``, ``l2``
       and ``l2_shrinkage`` are Keras's ``l1_regularization_strength``,
       ``l2_regularization_strength`` and ``l2_shrinkage_regularization_strength``. ``lr`` must
       be > 0 (the rule divides by it), also when scheduled.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-3). learning_rate_power: <= 0 (-0.5). initial_accumulator_value: >= 0 (0.1).
        l1, l2, l2_shrinkage: >= 0 (0). beta: >= 0 (0). weight_decay: (0).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Ftrl(params, lr=0.05, l1=1e-3, l2=1e-2)

    State: ``accumulator``, ``linear``, ``step``.
    References: McMahan et al., "Ad click prediction: a view from the trenches", KDD 2013.
    """

    kernel = "ftrl"
    state_names = ("accumulator", "linear")

    def __init__(self, params, lr=1e-3, learning_rate_power=-0.5, initial_accumulator_value=0.1, l1=0.0,
                 l2=0.0, l2_shrinkage=0.0, beta=0.0, weight_decay=0.0, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, learning_rate_power=learning_rate_power,
                        initial_accumulator_value=initial_accumulator_value, l1=l1, l2=l2,
                        l2_shrinkage=l2_shrinkage, beta=beta, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0, low_open=True),
                    learning_rate_power=real(f"learning_rate_power ({where})", group["learning_rate_power"],
                                             high=0.0),
                    initial_accumulator_value=real(f"initial_accumulator_value ({where})",
                                                   group["initial_accumulator_value"], low=0.0),
                    l1=real(f"l1 ({where})", group["l1"], low=0.0),
                    l2=real(f"l2 ({where})", group["l2"], low=0.0),
                    l2_shrinkage=real(f"l2_shrinkage ({where})", group["l2_shrinkage"], low=0.0),
                    beta=real(f"beta ({where})", group["beta"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _state_init(self, name, group):
        return float(group["initial_accumulator_value"]) if name == "accumulator" else 0.0

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        lr = h["lr"]
        if not lr > 0:  # a schedule may reach 0: the rule divides by lr
            raise ValueError(f"Ftrl needs a learning rate > 0, got {lr}")
        c = -h["learning_rate_power"]
        return (lr, c, h["l1"], 2 * (h["l2"] + h["beta"] / (2.0 * lr)), 2 * h["l2_shrinkage"],
                h["weight_decay"], c == 0.5)
