"""Naive NumPy reference of Muon (torch.optim.Muon's rule): the spec and the test oracle.

Muon orthogonalizes each 2-D parameter's (Nesterov) momentum with a few Newton-Schulz iterations
(Jordan et al. 2024). Written from torch.optim.Muon (torch 2.13, ``torch/optim/_muon.py``) in its order of
operations, with whole-array NumPy temporaries; nothing here is fast. One difference on purpose: torch runs
the Newton-Schulz iterations in bfloat16, this reference (and ``fastopt.Muon``) in the parameter's dtype
(float32 or float64), so fastopt's numbers equal torch's only up to bfloat16 rounding of the orthogonalized
update; with torch's bfloat16 cast removed they equal torch's to float rounding (tests/test_muon.py).

Muon is not in ``fastopt.reference.STEPS``: that table's rules take arrays of any shape, Muon only matrices.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.reference.ops import _lerp
from fastopt.reference.state import _zeros_state

__all__ = ["muon_step", "zeropower_via_newtonschulz", "adjusted_lr", "Muon", "NS_COEFFICIENTS"]

#: Keller Jordan's quintic coefficients (a, b, c), torch's default
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def zeropower_via_newtonschulz(G, ns_coefficients=NS_COEFFICIENTS, ns_steps=5, eps=1e-7):
    """torch's ``_zeropower_via_newtonschulz`` in G's dtype (torch: bfloat16).

    X = G^T if rows > cols else G;  X = X / max(||X||_F, eps)
    ns_steps times:  A = X X^T;  B = b A + c A A;  X = a X + B X
    return X^T if transposed else X
    """
    a, b, c = (float(x) for x in ns_coefficients)
    tall = G.shape[0] > G.shape[1]
    X = G.T if tall else G
    norm = X.dtype.type(np.sqrt(np.sum(np.square(X.astype(np.float64)))))  # accumulated in float64
    X = X / max(norm, X.dtype.type(eps))
    for _ in range(int(ns_steps)):
        A = X @ X.T
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.T if tall else X


def adjusted_lr(lr, adjust_lr_fn, shape):
    """torch's ``_adjust_lr``: None/'original': lr * sqrt(max(1, A / B)); 'match_rms_adamw': lr * 0.2 *
    sqrt(max(A, B)) (A, B = shape[:2])."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, A / B))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(A, B))
    return lr


def muon_step(p, g, state, *, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
              ns_coefficients=NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, maximize=False):
    """One Muon step (torch.optim.Muon) of a 2-D array, in place.

    B = lerp(B, g, 1 - momentum)                       (B = momentum * B + (1 - momentum) * g)
    U = lerp(g, B, momentum) if nesterov else B
    O = NS(U)                                          (zeropower_via_newtonschulz)
    p = p * (1 - lr * weight_decay)
    p = p - adjusted_lr(lr, adjust_lr_fn, p.shape) * O

    ``maximize`` (fastopt's, not torch's) negates g first. State: ``momentum_buffer`` (no step count, as torch).
    """
    if p.ndim != 2:
        raise ValueError(f"Muon only supports 2D parameters, got shape {p.shape}")
    lr, weight_decay, momentum = float(lr), float(weight_decay), float(momentum)
    grad = -g if maximize else g
    buf = _zeros_state(state, "momentum_buffer", p)
    buf[...] = _lerp(buf, grad, 1 - momentum)
    update = _lerp(grad, buf, momentum) if nesterov else buf
    ortho = zeropower_via_newtonschulz(update, ns_coefficients, ns_steps, eps)
    p *= 1 - lr * weight_decay
    p += -adjusted_lr(lr, adjust_lr_fn, p.shape) * ortho


class Muon:
    """Reference Muon over a list of 2-D arrays: ``Muon(params, **hyper).step(grads)`` (params in place;
    ``state`` is the list of per-array state dicts)."""

    def __init__(self, params, **hyper):
        self.params = list(params)
        self.hyper = hyper
        self.state = [{} for _ in self.params]

    def step(self, grads, grad_scale=1.0):
        for p, g, st in zip(self.params, grads, self.state):
            if g is not None:
                muon_step(p, g * float(grad_scale) if grad_scale != 1.0 else g, st, **self.hyper)
