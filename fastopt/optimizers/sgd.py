"""Stochastic gradient descent with momentum and Nesterov momentum."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, keras_decay, resolve
from fastopt.optimizers.base import Optimizer


class SGD(Optimizer):
    r"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD), or
    Keras 3's SGD (``convention="keras"``).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        b_t &= \mu b_{t-1} + (1 - \tau) g_t \quad (b_1 = g_1) \\
        g_t &= g_t + \mu b_t \text{ (nesterov) else } b_t \quad (\mu \ne 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t

    ``convention="keras"`` (keras.optimizers.SGD):

    .. math::
        \theta &\leftarrow \theta - \theta \lambda \gamma \quad \text{(decoupled, before the update)} \\
        b_t &= \mu b_{t-1} - \gamma \nabla_t \quad (b_0 = 0) \\
        \theta_t &= \theta_{t-1} + \mu b_t - \gamma \nabla_t \text{ (nesterov) else } \theta_{t-1} + b_t
        \quad (\mu \ne 0;\ \text{else } \theta_t = \theta_{t-1} - \gamma \nabla_t)

    Symbols: :math:`\gamma` ``lr``, :math:`\mu` ``momentum``, :math:`\tau` ``dampening``,
    :math:`\lambda` ``weight_decay``; with ``maximize`` the gradient's sign flips first.

    .. warning::
       ``convention="keras"`` changes the rule, not only the defaults: the learning rate is inside
       the velocity (``momentum_buffer`` holds Keras's ``momentum * b - lr * g``, so editing ``lr``
       does not rescale the velocity already built up), the buffer starts at zero (torch's starts
       at the first gradient), ``weight_decay`` is Keras's decoupled decay ``p - p * wd * lr``
       applied before the update (torch's is an L2 term added to the gradient), ``dampening`` must
       be 0 (Keras has none), ``momentum`` must lie in [0, 1], and Nesterov needs no momentum (it
       is plain SGD without one). The default ``lr`` is Keras's 0.01.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (1e-3; Keras: 1e-2). momentum: momentum factor (0). dampening: dampening
        of the momentum (0). weight_decay: L2 penalty (0; Keras: decoupled decay). nesterov: Nesterov
        momentum (False). convention: ``"torch"`` or ``"keras"`` (keyword-only).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.SGD([w, b], lr=0.1, momentum=0.9, nesterov=True)
        >>> opt.step([dw, db])
        >>> keras_like = fastopt.SGD([w, b], momentum=0.9, convention="keras")  # lr 0.01

    State: ``momentum_buffer`` (when momentum != 0).
    References: Sutskever et al., "On the importance of initialization and momentum", 2013;
    keras/src/optimizers/sgd.py (Keras 3).
    """

    kernel = "sgd"
    state_names = ("momentum_buffer",)
    counts_steps = False

    def __init__(self, params, lr=ConventionDefault(1e-3, 1e-2), momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, convention="torch", **kwargs):
        convention = check_convention(convention)
        defaults = dict(lr=resolve(convention, lr), momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, convention=convention)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        keras = check_convention(group["convention"], where) == "keras"
        h = dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                 momentum=real(f"momentum ({where})", group["momentum"], low=0.0, high=1.0 if keras else None),
                 dampening=real(f"dampening ({where})", group["dampening"]),
                 weight_decay=real(f"weight_decay ({where})", group["weight_decay"], low=0.0),
                 nesterov=flag(f"nesterov ({where})", group["nesterov"]),
                 maximize=flag(f"maximize ({where})", group["maximize"]),
                 convention=group["convention"])
        if keras:
            if h["dampening"] != 0:
                raise ValueError(f"dampening must be 0 with convention='keras' (Keras's SGD has none) ({where})")
        elif h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening ({where})")
        return h

    def _required_states(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _state_before_first_step(self):
        return False

    def _on_new_state(self, g, names):
        # momentum switched on mid-training: torch starts the buffer as a copy of the next
        # gradient; the (internal only) step count drives that first-step rule
        for p in self._group_params[g]:
            self._steps[p.index] = 0

    def _scalars(self, h, step):
        lr, mom = h["lr"], h["momentum"]
        if h["convention"] == "keras":  # b = mom * b - lr * g every step; p - (-1) * b = p + b
            return (-1.0 if mom != 0 else lr, mom, mom, -lr, -lr)
        if step == 1:  # torch clones the gradient into a new buffer: 0 * 0 + 1 * g
            return (lr, mom, 0.0, 1.0, 1.0)
        return (lr, mom, mom, 1.0 - h["dampening"], 1.0)

    def _static_scalars(self, h):
        kwd, klr, kdecay = keras_decay(h)
        l2 = 0.0 if h["convention"] == "keras" else h["weight_decay"]
        return (l2, kwd, klr, h["momentum"] != 0, h["nesterov"], kdecay)
