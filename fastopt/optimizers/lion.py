"""Lion, Keras's formulation."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class Lion(Optimizer):
    r"""Lion: the sign of an interpolated momentum (keras.optimizers.Lion).

    .. math::
        \theta &\leftarrow \theta - \gamma\lambda\theta \quad \text{(Keras's decoupled decay, first)} \\
        \theta_t &= \theta - \gamma \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t) \\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g_t

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\lambda` ``weight_decay``,
    :math:`m` ``exp_avg`` (starts at 0); :math:`\operatorname{sign}(0) = 0`. Every step moves each
    element by exactly ``lr`` (or not at all): Lion wants a 3-10x smaller ``lr`` than AdamW.

    .. warning::
       Keras's weight decay, not the paper's: ``p -= p * weight_decay * lr`` before the sign step
       (the paper adds ``lr * weight_decay * p`` to it: the same decay, after instead of before).

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-3). betas: (0.9, 0.99); beta1 in (0, 1] as Keras requires, beta2 in [0, 1].
        weight_decay: (0). maximize, clipnorm, clipvalue, global_clipnorm, use_ema, ..., backend:
        see ``Optimizer``.

    Example:
        >>> opt = fastopt.Lion(params, lr=1e-4, weight_decay=0.1)

    State: ``exp_avg``, ``step``.
    References: Chen et al., "Symbolic discovery of optimization algorithms", NeurIPS 2023.
    """

    kernel = "lion"
    state_names = ("exp_avg",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False, **kwargs):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        try:
            b1, b2 = group["betas"]
        except (TypeError, ValueError):
            raise TypeError(f"{where} betas must be a pair (beta1, beta2), got {group['betas']!r}") from None
        # Keras: beta_1 in (0, 1], "otherwise the optimizer degenerates to SignSGD"
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    b1=real(f"beta parameter at index 0 ({where} betas[0])", b1, low=0.0, low_open=True, high=1.0),
                    b2=real(f"beta parameter at index 1 ({where} betas[1])", b2, low=0.0, high=1.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        b1, b2 = h["b1"], h["b2"]
        return (h["lr"], h["weight_decay"], b1, 1 - b1, b2, 1 - b2)
