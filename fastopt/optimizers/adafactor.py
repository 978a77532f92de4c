"""Adafactor: factored second moments, relative step sizes, RMS clipping (torch's and Keras's)."""
from __future__ import annotations

import math

import numpy as np

from fastopt import _backends
from fastopt._validate import flag, real
from fastopt.optimizers._convention import ConventionDefault, check_convention, resolve
from fastopt.optimizers._per_array import LANES, PerArrayOptimizer

#: the state names of each convention: row factor, column factor, unfactored variance
_FORMS = {"torch": ("row_var", "col_var", "variance"), "keras": ("r", "c", "v")}
#: torch's default eps; with convention="keras" this very object stands for Keras's (1e-30, 1e-3)
_EPS = (None, 1e-3)
_KERAS_EPS = (1e-30, 1e-3)
#: Keras's spellings accepted with convention="keras" -> torch's argument (eps: its index)
_KERAS_ALIASES = {"beta_2_decay": "beta2_decay", "epsilon_1": ("eps", 0), "epsilon_2": ("eps", 1),
                  "clip_threshold": "d"}
_DEFAULTS = {"beta2_decay": -0.8, "d": 1.0}


def _blocks(nrows, ncols):
    """Row blocks per matrix of the factored reductions: a function of the shape only (so the sums
    do not depend on the threads), at least 64K elements each, at most 64, and few enough that the
    float64 column partials (one row of ncols per block) stay under 1/16 of the matrix."""
    return max(1, min(64, nrows // 16, (nrows * ncols) // 65536))


def _max_nan(a, b):
    """np.maximum of two floats: NaN if either is NaN (Keras's ops.maximum)."""
    return a if a != a else max(a, b)


class Adafactor(PerArrayOptimizer):
    r"""Adafactor (torch.optim.Adafactor), or Keras 3's Adafactor (``convention="keras"``).

    .. math::
        \rho_t &= \min(\gamma, 1/\sqrt{t}), \quad \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta_{t-1}))\,\rho_t,
        \quad w_t = t^{c} \\
        \theta &\leftarrow \theta (1 - \gamma\lambda) \\
        R_t &= \mathrm{lerp}(R_{t-1}, \overline{g^2}_{\text{row}}, w_t), \quad
        C_t = \mathrm{lerp}(C_{t-1}, \overline{g^2}_{\text{col}}, w_t), \quad
        V_t = \frac{R_t C_t}{\max(\overline{R_t}, \epsilon_1)} \quad (\text{ndim} \ge 2) \\
        V_t &= \mathrm{lerp}(V_{t-1}, g^2, w_t) \quad (\text{ndim} < 2) \\
        U_t &= g_t / \sqrt{\max(V_t, \epsilon_1^2)}, \quad
        \theta_t = \theta - \frac{\alpha_t}{\max(1, \mathrm{RMS}(U_t)/d)}\, U_t

    Symbols: :math:`\gamma` ``lr``, :math:`c` ``beta2_decay``, :math:`(\epsilon_1, \epsilon_2)`
    ``eps`` (:math:`\epsilon_1` None: the dtype's machine epsilon), :math:`d` ``d``,
    :math:`\lambda` ``weight_decay``. Arrays with ndim >= 2 are factored over their last two
    dimensions (leading dimensions are a batch of matrices: R, C per matrix); vectors and
    scalars keep a full ``variance``. RMS and the row/column sums are of each WHOLE array,
    accumulated in float64.

    ``convention="keras"`` (keras.optimizers.Adafactor):

    .. math::
        \theta &\leftarrow \theta - \theta\lambda\gamma \quad \text{(Keras's decoupled decay, first)}, \quad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(\theta))\,\rho_t, \quad \beta_t = 1 - t^{c} \\
        G &= g^2 + \epsilon_1, \quad R_t = \beta_t R_{t-1} + (1 - \beta_t)\,\overline{G}_{\text{row}}, \quad
        C_t = \beta_t C_{t-1} + (1 - \beta_t)\,\overline{G}_{\text{col}}, \quad
        V_t = (R_t / \overline{R_t})\, C_t \\
        V_t &= \beta_t V_{t-1} + (1 - \beta_t) G \quad (\text{ndim} < 2), \quad
        U_t = g / \sqrt{V_t}, \quad \theta_t = \theta - \alpha_t \frac{U_t}{\max(1, \mathrm{RMS}(U_t)/d)}

    Passes per array: two for ndim < 2 (the moments with the sums of :math:`\theta^2` and
    :math:`U^2`, then the update); three for ndim >= 2 (row/column sums with :math:`\theta^2`;
    :math:`U^2`, which needs every updated column factor; the update, which needs RMS(U)).

    .. warning::
       ``convention="keras"`` changes the rule, not only the defaults: :math:`\epsilon_1` is added
       to :math:`g^2` (torch clamps :math:`V` with it), the row factor is divided by its unclamped
       mean, the weight decay is Keras's ``p - p * wd * lr`` applied before the update (so RMS(p)
       is of the decayed parameter; torch measures it first), the moving averages are
       ``b * x + (1 - b) * y`` (torch: lerp), NaN statistics propagate (torch's Python ``max``
       drops them), and ``d`` (Keras's ``clip_threshold``) may lie below 1. Omitted
       hyperparameters take Keras's defaults (``lr`` 1e-3, ``eps`` (1e-30, 1e-3)). The state is
       Keras's ``r`` (shape ``p.shape[:-1]``), ``c`` (``p.shape[:-2] + p.shape[-1:]``) and ``v``
       (ndim < 2). Keras's spellings ``beta_2_decay``, ``epsilon_1``, ``epsilon_2`` and
       ``clip_threshold`` are accepted as aliases of ``beta2_decay``, ``eps`` and ``d`` (with
       this convention only); ``relative_step`` is accepted and, as in Keras 3, has no effect.
       Keras on torch computes some float64 reductions in float32; fastopt computes them in
       float64.

    .. warning::
       The statistics are per parameter array. Views of one ``fastopt.flatten`` buffer are
       separate arrays (their own shapes are factored, one kernel call each); ONE flat buffer
       passed as the only parameter is one vector: unfactored, with one RMS for the whole model.

    Args:
        params: an array, a list of arrays, or a list of group dicts.
        lr: the largest relative step size (1e-2; Keras: 1e-3). beta2_decay: the decay rate
        exponent c <= 0 (-0.8). eps: (eps1, eps2) ((None, 1e-3); Keras: (1e-30, 1e-3)).
        d: the clipping threshold of RMS(U) (1; torch requires >= 1). weight_decay: torch's
        decoupled ``p * (1 - lr * wd)`` (0; Keras: its generic decay). convention: ``"torch"`` or
        ``"keras"`` (keyword-only). relative_step: Keras's flag, no effect (True).
        maximize, clipnorm, clipvalue, global_clipnorm, use_ema, gradient_accumulation_steps,
        backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Adafactor([w, b], lr=1e-2)
        >>> opt.step([dw, db])
        >>> keras_like = fastopt.Adafactor([w, b], convention="keras", clip_threshold=1.0)  # lr 1e-3

    State: ``row_var``, ``col_var`` (ndim >= 2, shapes ``p.shape[:-1] + (1,)`` and
    ``p.shape[:-2] + (1, p.shape[-1])``) or ``variance`` (ndim < 2); Keras: ``r``, ``c`` or ``v``;
    ``step``.
    References: Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
    2018; torch/optim/_adafactor.py; keras/src/optimizers/adafactor.py (Keras 3).
    """

    kernel = "adafactor_vec_norms"
    state_names = _FORMS["torch"] + _FORMS["keras"]
    #: a vector's second pass re-reads g, p, v (the first reads p without writing it); a matrix's
    #: factored states are not per element (its three passes read g three times and p twice)
    extra_words_per_element = 3

    def __init__(self, params, lr=ConventionDefault(1e-2, 1e-3), beta2_decay=-0.8, eps=_EPS, d=1.0,
                 weight_decay=0.0, *, maximize=False, convention="torch", relative_step=True, **kwargs):
        convention = check_convention(convention)
        aliases = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS_ALIASES}
        hyper = dict(beta2_decay=beta2_decay, eps=eps, d=d)
        if convention == "keras" and eps is _EPS:
            hyper["eps"] = _KERAS_EPS
        if aliases and convention != "keras":
            raise TypeError(f"Adafactor got Keras's argument names {sorted(aliases)}: they are accepted with "
                            "convention='keras' only (torch's names: beta2_decay, eps, d)")
        for name, value in aliases.items():
            target = _KERAS_ALIASES[name]
            if isinstance(target, tuple):  # epsilon_1 / epsilon_2: one entry of eps
                if eps is not _EPS:
                    raise TypeError(f"Adafactor got both eps and {name}")
                pair = list(hyper["eps"])
                pair[target[1]] = value
                hyper["eps"] = tuple(pair)
            else:
                if hyper[target] != _DEFAULTS[target]:
                    raise TypeError(f"Adafactor got both {target} and {name}")
                hyper[target] = value
        defaults = dict(lr=resolve(convention, lr), **hyper, weight_decay=weight_decay, maximize=maximize,
                        convention=convention, relative_step=relative_step)
        super().__init__(params, defaults, **kwargs)

    def _check_hyper(self, group, where):
        keras = check_convention(group["convention"], where) == "keras"
        try:
            eps1, eps2 = group["eps"]
        except (TypeError, ValueError):
            raise TypeError(f"eps must be a pair (eps1, eps2) ({where}), got {group['eps']!r}") from None
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    beta2_decay=real(f"beta2_decay ({where})", group["beta2_decay"], high=0.0),
                    eps1=None if eps1 is None else real(f"epsilon1 ({where} eps[0])", eps1, low=0.0),
                    eps2=real(f"epsilon2 ({where} eps[1])", eps2, low=0.0),
                    # torch requires d >= 1; Keras's clip_threshold only has to be positive
                    d=real(f"clipping threshold d ({where})", group["d"], low=0.0 if keras else 1.0,
                           low_open=keras),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    maximize=flag(f"maximize ({where})", group["maximize"]),
                    relative_step=flag(f"relative_step ({where})", group["relative_step"]),
                    convention=group["convention"])

    def _required_states(self, group):
        return _FORMS.get(group["convention"], ())

    def _state_shape(self, name, p, group):
        if name not in self.state_names:
            return super()._state_shape(name, p, group)
        names = _FORMS.get(group.get("convention"), ())
        if name not in names:
            return None
        shape, k = p.array.shape, names.index(name)
        if (k == 2) != (len(shape) < 2):  # variance for vectors and scalars, R and C for the rest
            return None
        if k == 2:
            return shape
        keep = (1,) if names is _FORMS["torch"] else ()  # torch keeps the reduced dimension
        return shape[:-1] + keep if k == 0 else shape[:-2] + keep + shape[-1:]

    def _scalars(self, h, step):
        t, c = float(step), h["beta2_decay"]
        if h["convention"] == "keras":  # beta2_t = 1 - t**c: x * b2 + (1 - b2) * y
            b2 = 1.0 - t ** c
            return (min(h["lr"], 1.0 / math.sqrt(t)), 0.0, b2, 1.0 - b2)
        return (min(h["lr"], 1.0 / (t ** 0.5)), t ** c, 0.0, 0.0)  # torch's lerp weight 1 - beta2_t

    def _static_scalars(self, h):
        keras, wd, lr = h["convention"] == "keras", h["weight_decay"], h["lr"]
        decay = 1.0 if keras or wd == 0 else 1.0 - lr * wd
        return (keras, h["eps1"], h["eps2"], h["d"], wd, lr, decay, keras and wd != 0)

    def _step_size(self, keras, n, p_sq, u_sq, rho, eps2, d):
        """The final pass's (a, s): p = pd + a * U (torch) or pd + a * (U / s) (Keras)."""
        if keras:  # RMS = sqrt(mean); NaN propagates through Keras's ops.maximum
            rms_p = math.sqrt(p_sq / n) if n else math.nan
            rms_u = math.sqrt(u_sq / n) if n else math.nan
            return -(_max_nan(rms_p, eps2) * rho), _max_nan(rms_u / d, 1.0)
        rms_p = math.sqrt(p_sq) / n ** 0.5 if n else 0.0  # torch: norm / sqrt(numel); Python's max drops NaN
        rms_u = math.sqrt(u_sq) / n ** 0.5 if n else 0.0
        return -(max(eps2, rms_p) * rho) / max(1.0, rms_u / d), 1.0

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):
        rho, w, b2, c2, keras, eps1, eps2, d, wd, lr, decay, kdecay = scalars
        acc, ema, acc_s, ema_m, ema_c, accumulate, use_ema, ftz = tail
        if eps1 is None:  # torch: the dtype's machine epsilon
            eps1 = float(np.finfo(call.dtype).eps)
        add_eps, e2 = (eps1, 0.0) if keras else (0.0, eps1 * eps1)
        row, col, var = call.states[3:] if keras else call.states[:3]
        shape, n, par = self._params[call.first].array.shape, call.size, nchunks > 1
        first_decay = 1.0  # torch measures RMS(p) before its decay; Keras's decay is kdecay
        if len(shape) < 2:
            work = self._vector_work(call)
            call.named("adafactor_vec_norms", par)(
                call.p, g, var, w, b2, c2, add_eps, e2, 1.0, first_decay, wd, lr, kdecay, keras, acc, acc_s,
                accumulate, scale, clip, work, _backends.NORM_CHUNK, LANES, ftz)
            a, s = self._step_size(keras, n, work[-2], work[-1], rho, eps2, d)
            call.named("adafactor_vec_update", par)(
                call.p, g, var, e2, 1.0, decay, wd, lr, kdecay, a, s, keras, acc, ema, ema_m, ema_c, accumulate,
                use_ema, scale, clip, nchunks, ftz)
            return
        nrows, ncols = shape[-2], shape[-1]
        nmat, nblk = math.prod(shape[:-2]), _blocks(nrows, ncols)
        items = nmat * nblk
        work = self._scratch_for(call, "matrix", items * (ncols + 2 * LANES + 1) + 1)
        rfac = self._scratch_for(call, "rfac", nmat, call.dtype)
        call.named("adafactor_mat_stats", par)(
            call.p, g, row, col, rfac, w, b2, c2, add_eps, eps1, float(nrows), float(ncols), first_decay, wd, lr,
            kdecay, keras, acc, acc_s, accumulate, scale, clip, work, nmat, nrows, ncols, nblk, LANES, ftz)
        p_sq = float(work[-1])
        # this pass only reads the gradient: with accumulation, straight from the window's sum
        call.named("adafactor_mat_norm", par)(acc if accumulate else g, row, col, rfac, e2, 1.0, keras, scale,
                                              clip, work, nmat, nrows, ncols, nblk, LANES, ftz)
        a, s = self._step_size(keras, n, p_sq, work[-1], rho, eps2, d)
        call.named("adafactor_mat_update", par)(
            call.p, g, row, col, rfac, e2, 1.0, decay, wd, lr, kdecay, a, s, keras, acc, ema, ema_m, ema_c,
            accumulate, use_ema, scale, clip, nmat, nrows, ncols, ftz)
