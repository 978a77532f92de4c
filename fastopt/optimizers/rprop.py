"""Rprop (resilient backpropagation)."""
from __future__ import annotations

from fastopt._validate import flag, real
from fastopt.optimizers.base import Optimizer


def _etas(value, where):
    try:
        minus, plus = value
    except (TypeError, ValueError):
        raise TypeError(f"etas ({where}) must be a pair (etaminus, etaplus), got {value!r}") from None
    minus, plus = real(f"etas[0] ({where})", minus), real(f"etas[1] ({where})", plus)
    if not 0.0 < minus < 1.0 < plus:  # torch's check and message
        raise ValueError(f"Invalid eta values: {minus}, {plus} ({where} etas; need 0 < etaminus < 1 < etaplus)")
    return minus, plus


def _step_sizes(value, where):
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise TypeError(f"step_sizes ({where}) must be a pair (min, max), got {value!r}") from None
    lo = real(f"step_sizes[0] ({where})", lo, low=0.0)
    hi = real(f"step_sizes[1] ({where})", hi, low=lo)
    return lo, hi


class Rprop(Optimizer):
    r"""Rprop: per-element step sizes that grow while the gradient keeps its sign and shrink
    when it flips; only the gradient's sign moves the parameters (torch.optim.Rprop).

    .. math::
        s_t &= \operatorname{clamp}\bigl(s_{t-1} \cdot
            \{\eta_+ \text{ if } g_t g_{t-1} > 0;\ \eta_- \text{ if } g_t g_{t-1} < 0;\ 1\},\
            s_{\min}, s_{\max}\bigr), \quad s_0 = \gamma \\
        g_t &\leftarrow 0 \text{ where } g_t g_{t-1} < 0 \quad
            \text{(a sign change: no move, and the next step compares with 0)} \\
        \theta_t &= \theta_{t-1} - \operatorname{sign}(g_t)\, s_t

    Symbols: :math:`\gamma` ``lr`` (the initial step size, set on the first step as in torch),
    :math:`\eta_\mp` ``etas``, :math:`s_{\min}, s_{\max}` ``step_sizes``. ``sign(NaN)`` is 0
    (torch's CPU sign): a NaN gradient entry leaves its parameter and step size as they are.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: initial step size (1e-2). etas: (etaminus, etaplus) with 0 < etaminus < 1 < etaplus
        ((0.5, 1.2)). step_sizes: (min, max) step size ((1e-6, 50)).
        weight_decay: (0) a coupled L2 penalty added to the gradient before its sign is taken;
        not a torch.optim.Rprop option (0 is torch's rule).
        maximize, clipnorm, clipvalue, global_clipnorm, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Rprop(params, lr=1e-3, step_sizes=(1e-6, 1.0))
        >>> opt.step(grads)

    State: ``prev`` (the last gradient, 0 after a sign change), ``step_size``, ``step``.
    References: Riedmiller & Braun, "A direct adaptive method for faster backpropagation
    learning: the RPROP algorithm", ICNN 1993.
    """

    kernel = "rprop"
    state_names = ("prev", "step_size")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, maximize=False,
                 weight_decay=0.0, **kwargs):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize, weight_decay=weight_decay)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        minus, plus = _etas(group["etas"], where)
        lo, hi = _step_sizes(group["step_sizes"], where)
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0), etaminus=minus, etaplus=plus,
                    smin=lo, smax=hi,
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return (step == 1,)  # torch creates step_size = lr on the first step

    def _static_scalars(self, h):
        return (h["lr"], h["etaminus"], h["etaplus"], h["smin"], h["smax"], 1.0, 0.0, h["weight_decay"])
