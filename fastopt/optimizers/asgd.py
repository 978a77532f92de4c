"""ASGD (averaged stochastic gradient descent)."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


class ASGD(Optimizer):
    r"""ASGD: SGD with a decaying step size and a running average of the iterates
    (torch.optim.ASGD).

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1} \\
        \theta_t &= \theta_{t-1}(1 - \kappa \eta_{t-1}) - \eta_{t-1} g_t \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_{t-1} (\theta_t - \bar\theta_{t-1})
            \quad (\bar\theta_t = \theta_t \text{ while } \mu_{t-1} = 1) \\
        \eta_t &= \gamma / (1 + \kappa \gamma t)^\alpha, \quad \mu_t = 1 / \max(1, t - t_0)

    with :math:`\eta_0 = \gamma`, :math:`\mu_0 = 1`. Symbols: :math:`\gamma` ``lr``,
    :math:`\kappa` ``lambd``, :math:`\alpha` ``alpha``, :math:`t_0` ``t0``, :math:`\lambda`
    ``weight_decay``. Until step ``t0 + 2`` the average is a copy of the parameters (with the
    default ``t0=1e6``, always); from then on it averages the iterates since that step. Read it
    from ``averaged_params``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: (1e-2). lambd: decay term (1e-4). alpha: power of the eta update (0.75).
        t0: the step from which averaging starts (1e6). weight_decay: L2 penalty (0).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.ASGD(params, lr=0.05, t0=1000)
        >>> opt.step(grads)
        >>> evaluate(opt.averaged_params)

    State: ``ax`` (the average, 0 before the first step), ``step``, and ``eta``, ``mu`` (scalars
    that follow from the step and the hyperparameters; recomputed from them, also after loading
    a state_dict). :math:`\eta_{t-1}` is computed with the lr of step :math:`t`: for a constant
    lr that is torch's value; after an edit of ``lr`` torch's first step still uses the old one.
    References: Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", 1992.
    """

    kernel = "asgd"
    state_names = ("ax",)
    scalar_state_names = ("eta", "mu")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, *, maximize=False,
                 **kwargs):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    @property
    def averaged_params(self):
        """The running averages of the parameters (torch's ``ax``), shaped like them: live views."""
        return [p.states["ax"].reshape(p.array.shape) for p in self._params]

    def _check_hyper(self, group, where):
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    lambd=real(f"lambd value ({where})", group["lambd"], low=0.0),
                    alpha=real(f"alpha value ({where})", group["alpha"]),
                    t0=real(f"t0 value ({where})", group["t0"]),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _eta_mu(self, h, t):
        """eta and mu after ``t`` steps (torch's state; its initial values at t = 0), in torch's
        scalar dtype where ``_scalar_round`` says it is not double."""
        if t == 0:
            eta, mu = h["lr"], 1.0
        else:
            lr = h["lr"]
            eta, mu = lr / ((1 + h["lambd"] * lr * t) ** h["alpha"]), 1 / max(1, t - h["t0"])
        r = self._scalar_round
        return (eta, mu) if r is None else (r(eta), r(mu))

    def _scalar_state(self, h, step):
        eta, mu = self._eta_mu(h, step)
        return {"eta": eta, "mu": mu}

    def _scalars(self, h, step):
        eta, mu = self._eta_mu(h, step - 1)
        return (1 - h["lambd"] * eta, -eta, mu, mu != 1)

    def _static_scalars(self, h):
        return (h["weight_decay"],)
