"""What ``python -m fastopt bench`` compares: the cases and the implementations that step them.

- the cases: ``OPTIMIZERS`` (every fastopt optimizer, with the hyperparameters every implementation
  uses), ``DEFAULT_OPTIMIZERS``, ``DEFAULT_SIZES``, and ``bytes_per_element``, what one fused step
  moves;
- the implementations (``IMPLS``, ``DEFAULT_IMPLS``; ``--against`` names in ``AGAINST``):
  ``make_stepper`` builds one step of fastopt, of the NumPy reference (``fastopt.reference.STEPS``)
  or, through ``competitor_step``, of ``torch.optim`` (``TORCH_VARIANTS``: fused / foreach /
  for-loop) or DeepSpeed's CPU Adam; ``Unsupported`` says one cannot run a case.

Shared with ``bench-torch`` (``competitor_step``) and the pytest-benchmark suites in ``benchmarks/``.
"""
from __future__ import annotations

import numpy as np

from fastopt._bench.buffers import flat_pair

DEFAULT_SIZES = (1_000, 65_536, 1_048_576, 16_777_216)

#: optimizer name -> hyperparameters used by every implementation (torch names; the source's defaults
#: otherwise). Every fastopt optimizer is here; the default run times ``DEFAULT_OPTIMIZERS``.
OPTIMIZERS = {
    "SGD": {"lr": 1e-3, "momentum": 0.9},
    "Adam": {"lr": 1e-3},
    "AdamW": {"lr": 1e-3, "weight_decay": 1e-2},
    "RMSprop": {"lr": 1e-2},
    "Adagrad": {"lr": 1e-2},
    # the rest of torch.optim's elementwise rules
    "Adadelta": {"lr": 1.0},
    "Adamax": {"lr": 2e-3},
    "NAdam": {"lr": 2e-3},
    "RAdam": {"lr": 1e-3},
    "Rprop": {"lr": 1e-2},
    "ASGD": {"lr": 1e-2, "t0": 0.0},  # averaging on from the start: the rule's full traffic
    # Keras and optax
    "Ftrl": {"lr": 1e-3},
    "Lion": {"lr": 1e-4},
    "Yogi": {"lr": 1e-3},
    "AdaBelief": {"lr": 1e-3},
    "Adan": {"lr": 1e-3},
    "ScheduleFreeAdamW": {"lr": 2.5e-3},
    "ScheduleFreeSGD": {"lr": 1.0},
    # per-array statistics (two passes)
    "Lamb": {"lr": 1e-3},
    "LARS": {"lr": 1e-3},
    "Adafactor": {"lr": 1e-2},
}
DEFAULT_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad")

IMPLS = ("fastopt", "numpy", "torch-fused", "torch-foreach", "torch-forloop", "deepspeed")
#: --against names (torch = torch's fused implementation)
AGAINST = {"numpy": "numpy", "torch": "torch-fused", "torch-fused": "torch-fused",
           "torch-foreach": "torch-foreach", "torch-forloop": "torch-forloop", "deepspeed": "deepspeed"}
DEFAULT_IMPLS = ("fastopt", "numpy", "torch-fused", "torch-forloop")


class Unsupported(Exception):
    """This implementation cannot run this case (e.g. torch has no fused RMSprop)."""


def bytes_per_element(name, hyper, itemsize):
    """Bytes one fused step reads and writes per element: p read + write, g read, each state array
    the configuration uses read + write, plus what a multi-pass rule reads again
    (``Optimizer.extra_words_per_element``: LAMB's and LARS's statistics passes).

    Adam fp32: p 8 + g 4 + exp_avg 8 + exp_avg_sq 8 = 28 B (+8 with amsgrad); SGD with momentum 20
    (12 without); RMSprop 20 (+8 centered, +8 momentum); Adagrad 20. Factored states (Adafactor's
    row and column statistics of a matrix) are not per element; the bench's flat buffer is a vector.
    """
    import fastopt
    if name not in OPTIMIZERS and not hasattr(fastopt, name):
        raise ValueError(f"unknown optimizer {name!r}")
    dtype = np.float32 if itemsize == 4 else np.float64
    opt = getattr(fastopt, name)(np.zeros(2, dtype), **hyper)
    group = opt.param_groups[0]
    states = [name for name in opt._required_states(group)
              if opt._state_shape(name, opt._params[0], group) is not None]
    return (3 + 2 * len(states) + opt.extra_words_per_element) * itemsize


def make_stepper(impl, name, n, dtype, *, backend=None, hyper=None, global_clipnorm=None, grads="normal",
                 flush_denormals=False):
    """A zero-argument callable doing one step of ``impl`` on fresh buffers of ``n`` elements.

    ``impl`` is one of ``IMPLS``; ``backend`` picks the fastopt backend (None: the active one).
    With ``global_clipnorm`` fastopt clips inside the step and torch calls ``clip_grad_norm_`` first.
    ``grads`` is a key of ``GRAD_SCALES``; ``flush_denormals`` is fastopt's option of that name.
    Raises ``Unsupported`` when the implementation cannot run this case.
    """
    hyper = dict(OPTIMIZERS[name] if hyper is None else hyper)
    p, g = flat_pair(n, dtype, grads)
    if impl == "fastopt":
        import fastopt
        opt = getattr(fastopt, name)(p, backend=backend, global_clipnorm=global_clipnorm,
                                     flush_denormals=flush_denormals, **hyper)
        step = opt.step

        def fastopt_step():
            step(g)
        fastopt_step.keep = (opt, p, g)
        fastopt_step.params = p
        return fastopt_step
    if impl == "numpy":
        if global_clipnorm is not None:
            raise Unsupported("numpy reference with clipping is not benchmarked")
        from fastopt.reference import STEPS
        update = STEPS[name]
        state = {}

        def numpy_step():
            update(p, g, state, **hyper)
        numpy_step.keep = (p, g, state)
        numpy_step.params = p
        return numpy_step
    if impl in TORCH_VARIANTS or impl == "deepspeed":
        try:
            import torch
        except ImportError as exc:
            raise Unsupported("torch is not installed") from exc
        param = torch.nn.Parameter(torch.from_numpy(p))  # shares the staggered buffer
        param.grad = torch.from_numpy(g)
        step = competitor_step(impl, name, [param], hyper, global_clipnorm)
        step.params = p  # the tensor shares this buffer
        return step
    raise ValueError(f"unknown implementation {impl!r}; choose from {IMPLS}")


#: keyword arguments that pick each torch.optim implementation
TORCH_VARIANTS = {"torch-fused": {"fused": True}, "torch-foreach": {"foreach": True},
                  "torch-forloop": {"foreach": False}}


def competitor_step(impl, name, params, hyper, global_clipnorm=None):
    """A zero-argument step of a competitor over torch ``params`` whose ``.grad`` is set:
    ``torch.optim`` (an ``impl`` of ``TORCH_VARIANTS``) or DeepSpeed's CPU Adam (``deepspeed``).
    With ``global_clipnorm``, ``torch.nn.utils.clip_grad_norm_`` runs before each step, as a torch
    user would. Raises ``Unsupported`` when ``impl`` cannot run here."""
    import torch

    import fastopt
    torch.set_num_threads(fastopt.get_num_threads())
    if impl == "deepspeed":
        try:
            from deepspeed.ops.adam import DeepSpeedCPUAdam
        except ImportError as exc:
            raise Unsupported("deepspeed is not installed") from exc
        if name not in ("Adam", "AdamW"):
            raise Unsupported("DeepSpeedCPUAdam is Adam/AdamW only")
        opt = DeepSpeedCPUAdam(params, adamw_mode=name == "AdamW", **hyper)
    else:
        if not hasattr(torch.optim, name):
            raise Unsupported(f"torch.optim has no {name}")
        try:
            opt = getattr(torch.optim, name)(params, **hyper, **TORCH_VARIANTS[impl])
        except (TypeError, ValueError, RuntimeError) as exc:
            if "fused" in str(exc):
                raise Unsupported(f"torch {torch.__version__} has no fused {name}") from exc
            raise Unsupported(f"torch.optim.{name}: {exc}") from exc
    clip = torch.nn.utils.clip_grad_norm_
    if global_clipnorm is None:
        def step():
            opt.step()
    else:
        def step():
            clip(params, global_clipnorm)
            opt.step()
    step.keep = (opt, params)
    return step
