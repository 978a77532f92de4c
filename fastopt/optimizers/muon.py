"""Muon: momentum orthogonalized by Newton-Schulz iterations, for 2-D parameters (torch.optim.Muon)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastopt import _backends
from fastopt._validate import flag, real
from fastopt.optimizers._per_array import PerArrayOptimizer

#: Keller Jordan's quintic coefficients (a, b, c), torch's default
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


def _adjust_ratio(adjust_lr_fn, shape):
    """torch's ``_adjust_lr`` factor for a (rows, cols) parameter."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, A / B))
    return 0.2 * math.sqrt(max(A, B))  # "match_rms_adamw"


class Muon(PerArrayOptimizer):
    r"""Muon, MomentUm Orthogonalized by Newton-Schulz (torch.optim.Muon, torch 2.13).

    .. math::
        B_t &= B_{t-1} + (1 - \mu)(g_t - B_{t-1}) \\
        U_t &= g_t + \mu (B_t - g_t) \text{ (nesterov) else } B_t \\
        X &= U_t^{(\top)} / \max(\lVert U_t\rVert_F, \epsilon) \quad
            (\top \text{ when rows} > \text{cols}) \\
        X &\leftarrow a X + (b A + c A^2) X, \quad A = X X^\top \quad (k \text{ times}) \\
        \theta_t &= \theta_{t-1}(1 - \gamma\lambda) - \gamma' X^{(\top)}, \quad
            \gamma' = \gamma\sqrt{\max(1, \text{rows}/\text{cols})} \text{ ('original', None)}
            \text{ or } 0.2\gamma\sqrt{\max(\text{rows}, \text{cols})} \text{ ('match_rms_adamw')}

    Symbols: :math:`\gamma` ``lr``, :math:`\lambda` ``weight_decay``, :math:`\mu` ``momentum``,
    :math:`(a, b, c)` ``ns_coefficients``, :math:`\epsilon` ``eps``, :math:`k` ``ns_steps``.

    Every parameter must be 2-D (as torch.optim.Muon; give the others to an AdamW): a ValueError
    names the first that is not, before anything changes.

    .. warning::
       torch.optim.Muon runs the Newton-Schulz iterations in **bfloat16**; fastopt runs them in the
       parameter's dtype (float32 / float64, NumPy's matmul, i.e. BLAS). Results therefore agree with
       torch's only to bfloat16 rounding of the orthogonalized update (about 1e-2 relative); with
       torch's cast removed they agree to float rounding.

    The elementwise passes (momentum and Nesterov blend into a workspace; decay and update) are
    NumPy in-place ufuncs over workspaces allocated once per parameter at its first step (never
    per step); the norm before the iterations is a float64 reduction by the backend's kernel. The
    iterations use BLAS's threads (fastopt's ``set_num_threads`` does not apply to them);
    ``flush_denormals`` does not apply to the NumPy passes.

    Args:
        params: 2-D arrays, or group dicts of them.
        lr: learning rate (1e-3). weight_decay: decoupled, ``p * (1 - lr * wd)`` first (0.1).
        momentum: (0.95). nesterov: Nesterov blend (True). ns_coefficients: (3.4445, -4.775, 2.0315).
        eps: floor of the norm (1e-7). ns_steps: iterations, 1 to 99 (5).
        adjust_lr_fn: None / 'original' (Keller Jordan's) or 'match_rms_adamw' (Moonshot's).
        maximize (fastopt's), clipnorm, clipvalue, global_clipnorm, use_ema,
        gradient_accumulation_steps, backend: see ``Optimizer``.

    Example:
        >>> opt = fastopt.Muon([w1, w2], lr=0.02)
        >>> opt.step([dw1, dw2])

    State: ``momentum_buffer`` (no step count, as torch).
    References: K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
    J. Liu et al., "Muon is Scalable for LLM Training", 2025; torch/optim/_muon.py.
    """

    kernel = "norm_partials"  # the passes are NumPy's; only the norm reduction is a kernel
    state_names = ("momentum_buffer",)
    counts_steps = False

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, *, maximize=False,
                 convention="torch", **kwargs):
        if convention != "torch":
            raise ValueError(f"convention must be 'torch' (Keras's and optax's Muon are not implemented yet), "
                             f"got {convention!r}")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
                        maximize=maximize)
        super().__init__(params, defaults, **kwargs)

    def add_param_group(self, param_group):
        if isinstance(param_group, dict) and "params" in param_group:
            arrays = param_group["params"]
            arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
            g = len(self.param_groups)
            for k, a in enumerate(arrays):
                if isinstance(a, np.ndarray) and a.ndim != 2:
                    where = f"param_groups[{g}]['params'][{k}]" if self._grouped else f"params[{k}]"
                    raise ValueError(f"Muon only supports 2-D parameters; {where} has shape {a.shape} "
                                     "(optimize it with another optimizer, e.g. AdamW)")
        super().add_param_group(param_group)

    def _check_hyper(self, group, where):
        coefs = group["ns_coefficients"]
        try:
            coefs = tuple(coefs)
        except TypeError:
            raise TypeError(f"ns_coefficients ({where}) must be a tuple of 3 real numbers, got {coefs!r}") from None
        if len(coefs) != 3:
            raise ValueError(f"ns_coefficients ({where}) must be 3 real numbers (a, b, c), got {coefs!r}")
        coefs = tuple(real(f"ns_coefficients[{i}] ({where})", c) for i, c in enumerate(coefs))
        if not all(math.isfinite(c) for c in coefs):
            raise ValueError(f"ns_coefficients ({where}) must be finite, got {coefs!r}")
        ns_steps = group["ns_steps"]
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, numbers.Integral):
            raise TypeError(f"ns_steps ({where}) must be an int, got {ns_steps!r}")
        if not 1 <= ns_steps < 100:
            raise ValueError(f"ns_steps ({where}) must be in [1, 99] (torch refuses 100 or more), got {ns_steps}")
        fn = group["adjust_lr_fn"]
        if fn not in ADJUST_LR_FNS:
            raise ValueError(f"adjust_lr_fn ({where}) must be None, 'original' or 'match_rms_adamw', got {fn!r}")
        eps = real(f"epsilon value ({where} eps)", group["eps"], low=0.0)
        if not math.isfinite(eps):
            raise ValueError(f"epsilon value ({where} eps) must be finite, got {eps}")
        return dict(lr=real(f"learning rate ({where} lr)", group["lr"], low=0.0),
                    weight_decay=real(f"weight_decay value ({where})", group["weight_decay"], low=0.0),
                    momentum=real(f"momentum ({where})", group["momentum"], low=0.0),
                    nesterov=flag(f"nesterov ({where})", group["nesterov"]), ns_coefficients=coefs, eps=eps,
                    ns_steps=int(ns_steps), adjust_lr_fn=fn, maximize=flag(f"maximize ({where})", group["maximize"]))

    def _scalars(self, h, step):
        return ()

    def _static_scalars(self, h):
        return (h["lr"], h["weight_decay"], h["momentum"], h["nesterov"], h["ns_coefficients"], h["eps"],
                h["ns_steps"], h["adjust_lr_fn"])

    def _workspace(self, call, shape, dtype):
        """The parameter's workspaces, allocated at its first step and reused: ``u`` (the blended
        update, flat), ``x`` (the iterate, (m, n) with m = min(shape)), ``a``, ``b`` ((m, m)),
        ``y`` ((m, n); also the elementwise passes' temporary) and the norm's float64 partials."""
        rows, cols = shape
        m, n = min(rows, cols), max(rows, cols)
        size = rows * cols
        u = self._scratch_for(call, "u", size, dtype)
        x = self._scratch_for(call, "x", size, dtype).reshape(m, n) if rows > cols else u.reshape(m, n)
        a = self._scratch_for(call, "a", m * m, dtype).reshape(m, m)
        b = self._scratch_for(call, "b", m * m, dtype).reshape(m, m)
        y = self._scratch_for(call, "y", size, dtype).reshape(m, n)
        nparts = max(1, -(-size // _backends.NORM_CHUNK))
        out = self._scratch_for(call, "norm_out", nparts)
        lanes = self._scratch_for(call, "norm_lanes", nparts * _backends.NORM_LANES)
        return u, x, a, b, y, out, lanes

    def _run_call(self, call, g, scalars, tail, scale, clip, nchunks):
        lr, wd, momentum, nesterov, (ca, cb, cc), eps, ns_steps, adjust_lr_fn = scalars
        acc, ema, acc_s, ema_m, ema_c, accumulate, use_ema, ftz = tail
        shape = self._params[call.first].array.shape
        dt = call.dtype.type
        p, buf = call.p, call.states[0]
        u, x, a, b, y, out, lanes = self._workspace(call, shape, call.dtype)
        t = y.reshape(-1)  # the elementwise temporary
        # -- pass 1: the gradient as the rule sees it (accumulated, scaled, clipped) ...
        if accumulate:  # the template's scaled_grad(g * acc_s + acc, scale, clip); acc is zeroed
            np.multiply(g, acc_s, out=u)
            u += acc
            acc.fill(0)
            g = u
        if scale != 1.0 or clip != math.inf:
            np.multiply(g, scale, out=u)
            if clip != math.inf:
                np.clip(u, -clip, clip, out=u)
            g = u
        # ... the momentum buffer, torch's buf.lerp_(g, 1 - momentum) ...
        w = 1.0 - momentum
        if w < 0.5:  # buf + w * (g - buf)
            np.subtract(g, buf, out=t)
            t *= w
            buf += t
        else:  # g - (g - buf) * (1 - w), 1 - w in the dtype as torch's lerp
            np.subtract(g, buf, out=t)
            t *= dt(1) - dt(w)
            np.subtract(g, t, out=buf)
        # ... and the update, torch's g.lerp(buf, momentum) (nesterov) or buf, into u
        if nesterov:
            if momentum < 0.5:  # g + momentum * (buf - g)
                np.subtract(buf, g, out=t)
                t *= momentum
                np.add(g, t, out=u)
            else:  # buf - (buf - g) * (1 - momentum)
                np.subtract(buf, g, out=u)
                u *= dt(1) - dt(momentum)
                np.subtract(buf, u, out=u)
        else:
            np.copyto(u, buf)
        rows, cols = shape
        if rows > cols:  # torch orthogonalizes the wide orientation
            np.copyto(x, u.reshape(rows, cols).T)
        # -- the Newton-Schulz iterations: BLAS on the workspaces
        call.named("norm_partials", _backends.chunks_for(u.size) > 1)(u, out, lanes, _backends.NORM_CHUNK,
                                                                      _backends.NORM_LANES, 0, 2.0)
        norm = max(dt(math.sqrt(math.fsum(out))), dt(eps))
        np.divide(x, norm, out=x)
        for _ in range(ns_steps):
            np.matmul(x, x.T, out=a)      # A = X X^T
            np.matmul(a, a, out=b)        # B = b A + c A A
            b *= cc
            a *= cb
            b += a
            np.matmul(b, x, out=y)        # X = a X + B X
            x *= ca
            x += y
        # -- pass 2: decoupled decay, then p - lr' * O
        p2 = p.reshape(rows, cols)
        decay = 1.0 - lr * wd
        if decay != 1.0:
            p2 *= decay
        x *= lr * _adjust_ratio(adjust_lr_fn, shape)
        np.subtract(p2, x.T if rows > cols else x, out=p2)
        if use_ema:  # ema = m * ema + (1 - m) * p
            ema *= ema_m
            np.multiply(p, ema_c, out=u)
            ema += u
