"""The optimizer registry that drives the parametrized specification tests."""
from __future__ import annotations

import contextlib
import inspect
import os

import numpy as np
import pytest

# Keras's parity tests run Keras 3 on its torch backend (chosen at import: before any test imports it)
os.environ.setdefault("KERAS_BACKEND", "torch")

import fastopt
from tests import registry_keras_conventions, registry_keras_optax, registry_per_array, registry_torch_family

#: (name, hyperparameters): every configuration the tests pin against the reference. The
#: foundation's come first (tests index into them); each later family keeps its list in its own
#: module (tests/registry_*.py) and is appended here.
CONFIGS = [
    ("SGD", {}),
    ("SGD", dict(lr=0.05, weight_decay=0.01)),
    ("SGD", dict(lr=0.03, momentum=0.9)),
    ("SGD", dict(lr=0.03, momentum=0.8, dampening=0.3, weight_decay=0.02, maximize=True)),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("Adam", {}),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),  # 1 - beta1 >= 0.5: lerp's other branch
    ("AdamW", {}),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.85, 0.995))),
    ("RMSprop", {}),
    ("RMSprop", dict(lr=0.003, alpha=0.9, weight_decay=0.01, momentum=0.7)),
    ("RMSprop", dict(lr=0.003, centered=True, eps=1e-6, maximize=True)),
    ("RMSprop", dict(lr=0.002, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.002, alpha=0.2, centered=True)),  # 1 - alpha >= 0.5: lerp's other branch
    ("Adagrad", {}),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.05, maximize=True)),
]
FOUNDATION = list(CONFIGS)
CONFIGS += (registry_torch_family.CONFIGS + registry_keras_optax.CONFIGS + registry_per_array.CONFIGS
            + registry_keras_conventions.CONFIGS)


#: one demanding (non-default) configuration per optimizer family, for the costlier tests
REPRESENTATIVE = [
    ("SGD", dict(lr=0.03, momentum=0.9)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.85, 0.995))),
    ("RMSprop", dict(lr=0.002, centered=True, momentum=0.5, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-8)),
]
REPRESENTATIVE += (registry_torch_family.REPRESENTATIVE + registry_keras_optax.REPRESENTATIVE
                   + registry_per_array.REPRESENTATIVE + registry_keras_conventions.REPRESENTATIVE)
assert all(cfg in CONFIGS for cfg in REPRESENTATIVE)


def config_id(cfg):
    name, hyper = cfg
    return name + ("-" + "-".join(f"{k}={v}" for k, v in hyper.items()) if hyper else "")


BACKENDS = ["numba", "cython", "python"]


def require_backend(name):
    if name not in fastopt.available_backends():
        pytest.skip(f"backend {name} is not available here")


@pytest.fixture(params=BACKENDS)
def backend(request):
    require_backend(request.param)
    return request.param


def mixed_grads(rng, shapes, dtype):
    """Gradients of mixed magnitudes (1e-3 .. 1e3), as real training produces."""
    return [(rng.standard_normal(s) * 10.0 ** rng.uniform(-3, 3, size=s)).astype(dtype) for s in shapes]


def make_params(rng, shapes, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def tolerance(dtype):
    """Relative tolerances for fastopt against the float64/float32 NumPy reference."""
    return dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)


def torch_rule(cfg, torch):
    """The ``torch.optim`` class of ``cfg``'s rule if torch has it, in torch's convention, with every
    option ``cfg`` sets (fastopt's extensions, such as Rprop's weight_decay, are not torch's); else None."""
    name, hyper = cfg
    cls = getattr(torch.optim, name, None)
    if (cls is None or hyper.get("convention", "torch") != "torch"
            or not set(hyper) <= set(inspect.signature(cls).parameters)):
        return None
    return cls


@contextlib.contextmanager
def torch_default_dtype(torch, dtype):
    """torch keeps scalar state (step, NAdam's mu_product, ASGD's eta and mu) in its default
    dtype: float64 parameters are compared with torch run under a float64 default, so that it
    does not round those scalars to float32 (the oracle, as fastopt, keeps them in double)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def kernel_threads(n):
    """fastopt's kernel thread count set to ``n`` for a block, restored after it."""
    before = fastopt.get_num_threads()
    fastopt.set_num_threads(n)
    try:
        yield
    finally:
        fastopt.set_num_threads(before)
