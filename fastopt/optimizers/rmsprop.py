"""RMSprop, plain and centered, with momentum."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, keras_decay, resolve
from fastopt.optimizers.base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop (torch.optim.RMSprop), or Keras 3's RMSprop (``convention="keras"``).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        s_t &= \alpha s_{t-1} + (1 - \alpha) g_t^2, \quad
        a_t = \alpha a_{t-1} + (1 - \alpha) g_t \text{ (centered)} \\
        d_t &= \sqrt{s_t - a_t^2} + \epsilon \text{ (centered) else } \sqrt{s_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t,\ \theta_t = \theta_{t-1} - \gamma b_t \quad (\mu > 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t \quad \text{(otherwise)}

    ``convention="keras"``: :math:`\theta \leftarrow \theta - \theta\lambda\gamma` first (decoupled),
    :math:`g_t = \nabla_t`, the same averages, and

    .. math::
        d_t &= \sqrt{s_t - a_t^2 + \epsilon} \text{ (centered) else } \sqrt{s_t + \epsilon} \\
        b_t &= \mu b_{t-1} + \gamma g_t / d_t,\ \theta_t = \theta_{t-1} - b_t \quad (\mu > 0) \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t \quad \text{(otherwise)}

    Symbols: :math:`\gamma` ``lr``, :math:`\alpha` ``alpha`` (Keras calls it ``rho``),
    :math:`\epsilon` ``eps``, :math:`\mu` ``momentum``, :math:`\lambda` ``weight_decay``.

    .. warning::
       ``convention="keras"`` (keras.optimizers.RMSprop) changes the rule, not only the defaults:
       ``eps`` goes inside the square root (``sqrt(v + eps)``: for a small ``v`` the denominator
       floors at ``sqrt(eps)``, 3e-4 for Keras's 1e-7), the momentum buffer accumulates ``lr * g / d`` (the
       learning rate is inside it: editing ``lr`` does not rescale what it holds) and the
       parameters move by the buffer itself, and ``weight_decay`` is Keras's decoupled decay
       ``p - p * wd * lr`` applied before the update (torch's is an L2 term). Keras's ``rho`` is
       ``alpha`` here; the defaults are Keras's: ``lr=1e-3``, ``alpha=0.9``, ``eps=1e-7``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-2; Keras: 1e-3). alpha: smoothing constant, Keras's ``rho`` (0.99; Keras: 0.9).
        eps: (1e-8; Keras: 1e-7). weight_decay: (0; Keras: decoupled decay). momentum: (0).
        centered: normalize by the estimated variance (False). convention: ``"torch"`` or
        ``"keras"`` (keyword-only). maximize, clipnorm, clipvalue, global_clipnorm, backend: see
        ``Optimizer``.

    Example:
        >>> opt = fastopt.RMSprop(params, lr=1e-3, centered=True)
        >>> keras_like = fastopt.RMSprop(params, convention="keras")  # rho 0.9, eps inside the root

    State: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum > 0), ``step``
    (Keras's velocity, average_gradient, momentum).
    References: Hinton, Lecture 6e, 2012; Graves, "Generating sequences with RNNs", 2013;
    keras/src/optimizers/rmsprop.py (Keras 3).
    """

    kernel = "rmsprop"
    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=ConventionDefault(1e-2, 1e-3), alpha=ConventionDefault(0.99, 0.9),
                 eps=ConventionDefault(1e-8, 1e-7), weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False, convention="torch", **kwargs):
        convention = check_convention(convention)
        defaults = dict(lr=resolve(convention, lr), alpha=resolve(convention, alpha), eps=resolve(convention, eps),
                        weight_decay=weight_decay, momentum=momentum, centered=centered, maximize=maximize,
                        convention=convention)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    alpha=real(f"alpha value ({where})", group["alpha"], low=0.0),
                    eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    momentum=real(f"momentum value ({where})", group["momentum"], low=0.0),
                    centered=flag(f"centered ({where})", group["centered"]),
                    maximize=flag(f"maximize ({where})", group["maximize"]),
                    convention=check_convention(group["convention"], where))

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
        alpha, lr = h["alpha"], h["lr"]
        use_buf = h["momentum"] > 0
        keras = h["convention"] == "keras"
        if keras:  # buf = momentum * buf + (lr * g) / d; p = p - 1 * buf; eps inside the root
            lr_k, num, l2, eps_in, eps_out = 1.0, lr if use_buf else -lr, 0.0, h["eps"], 0.0
        else:
            lr_k, num, l2, eps_in, eps_out = lr, 1.0 if use_buf else -lr, h["weight_decay"], 0.0, h["eps"]
        kwd, klr, kdecay = keras_decay(h)
        return (lr_k, alpha, 1.0 - alpha, eps_in, eps_out, l2, h["momentum"], num, kwd, klr, h["centered"],
                use_buf, keras, kdecay)
