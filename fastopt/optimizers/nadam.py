"""NAdam (torch.optim.NAdam, NAdamW) and Keras 3's Nadam, one kernel for both."""
from __future__ import annotations

from fastopt._validate import betas, flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, resolve
from fastopt.optimizers.base import Optimizer


class _RunningProduct:
    """The momentum schedule ``mu_t = b1 (1 - 0.5 q_t)``, ``q_t = 0.96^(t psi)``, and its running
    product ``P_t = P_{t-1} * mu_t`` (``P_0 = 1``), multiplied one step at a time in the source's
    grouping (so the bits match it), for any ``t``: the last value and every 1024th are kept, so
    steps moving forward cost O(1) each (one power: q_{t+1} is kept for the next step) and a step
    back at most 1024 products; a jump of more than ``FAR`` steps costs at most ``FAR`` products."""

    EVERY = 1024
    #: steps ahead beyond which a converged schedule's product is taken as a power of b1 (its bits
    #: then differ from the step-by-step product's by an ulp or so per million steps)
    FAR = 1 << 20

    def __init__(self, keras, b1, psi, rounding=None):
        self.keras, self.b1, self.psi = keras, b1, psi
        #: None, or the rounding of a scalar type the product is kept in (torch's float32 scalar
        #: state: ``P_t = fl(P_{t-1} * fl(mu_t))``)
        self.rounding = rounding
        self._marks = [1.0]  # P at t = 0, EVERY, 2 * EVERY, ...
        self._t, self._p = 0, 1.0
        self._q = (1, 0.96 ** psi)  # (t, q_t) for the next step forward

    def _power(self, t):
        q = self._q
        return q[1] if q[0] == t else 0.96 ** (t * self.psi)

    def _advance(self, p, q):
        if self.keras:  # Keras: u_product * beta_1 * (1 - 0.5 * 0.96 ** t), left to right
            return p * self.b1 * (1.0 - 0.5 * q)
        r = self.rounding
        if r is not None:  # torch's mu_product *= mu in its scalar dtype
            return r(p * r(self.b1 * (1.0 - 0.5 * q)))
        return p * (self.b1 * (1.0 - 0.5 * q))  # torch: mu_product * mu_t

    def __call__(self, t):
        """P_t."""
        if t != self._t + 1:
            k = min(t // self.EVERY, len(self._marks) - 1)
            if not (k * self.EVERY <= self._t <= t):
                self._t, self._p = k * self.EVERY, self._marks[k]
        while self._t < t:
            if self._p == 0.0:  # underflowed: every later mu_t is finite, so P stays 0
                self._t = t
                break
            if t - self._t > self.FAR and 1.0 - 0.5 * self._power(self._t + 1) == 1.0:
                # mu_t is b1 to the last bit from here on: a loaded step count far ahead (a
                # checkpoint's, or a corrupt 10**100) is one power, not a loop of t products
                r = self.rounding or float
                self._p = r(self._p * r(self.b1) ** (t - self._t))
                self._t = t
                break
            self._t += 1
            self._p = self._advance(self._p, self._power(self._t))
            if self._t == len(self._marks) * self.EVERY:
                self._marks.append(self._p)
        return self._p

    def at(self, t):
        """(mu_t, mu_{t+1}, P_t) of step ``t``."""
        q = self._power(t)
        if t == self._t + 1 and t % self.EVERY:  # the step after the last, not a mark: one product
            self._t, self._p = t, self._advance(self._p, q)
        else:
            self(t)
        q_next = 0.96 ** ((t + 1) * self.psi)
        self._q = (t + 1, q_next)
        return self.b1 * (1.0 - 0.5 * q), self.b1 * (1.0 - 0.5 * q_next), self._p


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam; NAdamW with
    ``decoupled_weight_decay``), or Keras 3's Nadam with ``convention="keras"``.

    .. math::
        g_t &= \nabla_t + \lambda \theta_{t-1}
            \quad (\text{decoupled: } \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)) \\
        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t \psi}\right), \quad
            P_t = \textstyle\prod_{i \le t} \mu_i \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
            v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &= \theta_{t-1} - \gamma \left(\frac{1 - \mu_t}{1 - P_t}\, g_t
            + \frac{\mu_{t+1}}{1 - P_t \mu_{t+1}}\, m_t\right) \Big/
            \left(\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\right)

    Symbols: :math:`\gamma` ``lr``, :math:`\beta_{1,2}` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, :math:`\psi` ``momentum_decay``. All coefficients,
    :math:`P_t` included, are computed in double per step.

    .. warning::
       ``convention="keras"`` computes ``keras.optimizers.Nadam`` (Keras 3): the weight decay is
       Keras's, decoupled and applied first (:math:`\theta \leftarrow \theta - \theta\lambda\gamma`),
       the averages are :math:`m + (g - m)(1 - \beta_1)` and :math:`v + (g^2 - v)(1 - \beta_2)`,
       and the update is :math:`\theta - \gamma\,\hat m / (\sqrt{v / (1 - \beta_2^t)} + \epsilon)`
       with :math:`\hat m = \mu_{t+1} m / (1 - P_{t+1}) + (1 - \mu_t) g / (1 - P_t)`. Keras's
       momentum schedule :math:`\mu_t = \beta_1(1 - \frac12 0.96^t)` is ``momentum_decay=1``,
       reaching :math:`\beta_1` within ~100 steps where torch's default 4e-3 takes ~25,000.
       Left-out hyperparameters take Keras's defaults: ``lr=1e-3``, ``eps=1e-7``,
       ``momentum_decay=1``. ``decoupled_weight_decay`` has no effect (Keras's decay is always
       decoupled, in its own form). The scalar state is Keras's ``u_product`` instead of
       ``mu_product``.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: learning rate (2e-3; Keras 1e-3). betas: (0.9, 0.999). eps: (1e-8; Keras 1e-7).
        weight_decay: (0): L2 penalty, or decoupled with ``decoupled_weight_decay``.
        momentum_decay: :math:`\psi` (4e-3; Keras 1). decoupled_weight_decay: NAdamW (False).
        convention: ``"torch"`` or ``"keras"``, per group (set in the defaults, it also chooses
        the defaults above). maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.NAdam(params, lr=1e-3, weight_decay=0.01, decoupled_weight_decay=True)
        >>> keras_like = fastopt.Nadam(params)           # convention="keras"

    State: ``exp_avg`` (m), ``exp_avg_sq`` (v), ``step``, and ``mu_product`` (``u_product`` under
    Keras's convention): :math:`P_t`, which follows from the step and ``betas[0]``,
    ``momentum_decay`` (recomputed from them, also after loading a state_dict, which is why
    editing those two mid-training restarts the product as if they had always held).
    References: Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016.
    """

    kernel = "nadam"
    state_names = ("exp_avg", "exp_avg_sq")
    scalar_state_names = ("mu_product", "u_product")
    #: decoupled_weight_decay is a group option here: a torch state_dict's value always loads
    decoupled = None

    def __init__(self, params, lr=ConventionDefault(2e-3, 1e-3), betas=(0.9, 0.999), eps=ConventionDefault(1e-8, 1e-7),
                 weight_decay=0.0, momentum_decay=ConventionDefault(4e-3, 1.0), decoupled_weight_decay=False, *,
                 maximize=False, convention="torch", **kwargs):
        convention = check_convention(convention)
        defaults = dict(lr=resolve(convention, lr), betas=betas, eps=resolve(convention, eps),
                        weight_decay=weight_decay, momentum_decay=resolve(convention, momentum_decay),
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, convention=convention)
        self._products = {}
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        b1, b2 = betas(group["betas"], f"{where} betas")
        h = dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), b1=b1, b2=b2,
                 eps=real(f"epsilon value ({where} eps)", group["eps"], low=0.0),
                 weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                 momentum_decay=real(f"momentum_decay value ({where})", group["momentum_decay"], low=0.0),
                 decoupled=flag(f"decoupled_weight_decay ({where})", group["decoupled_weight_decay"]),
                 maximize=flag(f"maximize ({where})", group["maximize"]),
                 keras=check_convention(group["convention"], where) == "keras")
        h["_products"] = self._product(h)
        return h

    def _product(self, h):
        """The running product P_t of this group's momentum schedule (torch's mu_product,
        Keras's u_product), shared by every group with the same schedule."""
        key = (h["keras"], h["b1"], h["momentum_decay"], self._scalar_round)
        prod = self._products.get(key)
        if prod is None:
            prod = self._products[key] = _RunningProduct(*key)
        return prod

    def _scalar_state(self, h, step):
        return {"u_product" if h["keras"] else "mu_product": self._product(h)(step)}

    def _scalars(self, h, step):
        lr = h["lr"]
        mu, mu_next, prod = h["_products"].at(step)
        bc2 = 1.0 - h["b2"] ** step
        if h["keras"]:
            return (bc2, 0.0, 0.0, mu_next, 1.0 - prod * mu_next, 1.0 - mu, 1.0 - prod)
        return (bc2, -lr * (1.0 - mu) / (1.0 - prod), (-lr * mu_next) / (1.0 - prod * mu_next),
                0.0, 1.0, 0.0, 1.0)

    def _static_scalars(self, h):
        lr, wd, b1, b2 = h["lr"], h["weight_decay"], h["b1"], h["b2"]
        if h["keras"]:
            l2, decay, kwd = 0.0, 1.0, wd
        elif h["decoupled"]:
            l2, decay, kwd = 0.0, 1.0 - lr * wd, 0.0
        else:
            l2, decay, kwd = wd, 1.0, 0.0
        return (lr, h["eps"], 1.0 - b1, b2, 1.0 - b2, l2, decay, kwd, h["keras"])


class Nadam(NAdam):
    """Keras 3's Nadam (its class name): ``NAdam`` with ``convention="keras"`` by default, so
    left-out hyperparameters take Keras's defaults (``lr=1e-3``, ``eps=1e-7``).

    Example:
        >>> opt = fastopt.Nadam(params, lr=1e-3, weight_decay=0.004)
    """

    def __init__(self, params, lr=ConventionDefault(2e-3, 1e-3), betas=(0.9, 0.999), eps=ConventionDefault(1e-8, 1e-7),
                 weight_decay=0.0, momentum_decay=ConventionDefault(4e-3, 1.0), decoupled_weight_decay=False, *,
                 maximize=False, convention="keras", **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                         maximize=maximize, convention=convention, **kwargs)
