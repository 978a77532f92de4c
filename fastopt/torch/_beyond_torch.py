"""The fastopt.torch optimizers torch.optim lacks: ``Lion``, ``Lamb``, ``LARS``, ``Ftrl``, ``Yogi``,
``AdaBelief``, ``Adan`` and the schedule-free pair ``ScheduleFreeAdamW``/``ScheduleFreeSGD``
(with ``train()``/``eval()``, and the schedulefree package's names ``AdamWScheduleFree``/
``SGDScheduleFree``), on the same ``_adapter._TorchOptimizer`` base."""
from __future__ import annotations

import numpy as np

from fastopt import optimizers as _fo
from fastopt.torch._adapter import _switches, _TorchOptimizer


# torch.optim has none of these: the signatures follow fastopt's classes (the math's source: Keras,
# optax, the papers) with torch's names, Lion's default lr follows lion-pytorch, and the schedule-free
# pair takes the schedulefree package's argument order and its train()/eval(). State names are
# fastopt's (each class's docstring lists them).
class Lion(_TorchOptimizer):
    __doc__ = ("Lion on fastopt kernels; lion-pytorch's signature and default lr (1e-4) and the same update "
               "(decoupled decay first). State: ``step``, ``exp_avg``.\n\n" + (_fo.Lion.__doc__ or ""))
    _fastopt = _fo.Lion
    _hyper = ("lr", "betas", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False, foreach=None,
                 **options):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Lamb(_TorchOptimizer):
    __doc__ = ("LAMB on fastopt kernels (optax's/Keras's rule). State: ``step``, ``exp_avg``, "
               "``exp_avg_sq``.\n\n" + (_fo.Lamb.__doc__ or ""))
    _fastopt = _fo.Lamb
    _hyper = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0, *, maximize=False,
                 foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class LARS(_TorchOptimizer):
    __doc__ = ("LARS on fastopt kernels (optax's rule). State: ``step``, ``momentum_buffer`` (with "
               "momentum).\n\n" + (_fo.LARS.__doc__ or ""))
    _fastopt = _fo.LARS
    _hyper = ("lr", "weight_decay", "trust_coefficient", "eps", "momentum", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, weight_decay=0.0, trust_coefficient=0.001, eps=0.0, momentum=0.9,
                 nesterov=False, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
                        momentum=momentum, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Ftrl(_TorchOptimizer):
    __doc__ = ("FTRL-proximal on fastopt kernels (Keras's rule and argument names). State: ``step``, "
               "``accumulator``, ``linear``.\n\n" + (_fo.Ftrl.__doc__ or ""))
    _fastopt = _fo.Ftrl
    _hyper = ("lr", "learning_rate_power", "initial_accumulator_value", "l1", "l2", "l2_shrinkage", "beta",
              "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, learning_rate_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0,
                 l2_shrinkage=0.0, beta=0.0, weight_decay=0.0, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, learning_rate_power=learning_rate_power,
                        initial_accumulator_value=initial_accumulator_value, l1=l1, l2=l2,
                        l2_shrinkage=l2_shrinkage, beta=beta, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Yogi(_TorchOptimizer):
    __doc__ = ("Yogi on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_sq``.\n\n"
               + (_fo.Yogi.__doc__ or ""))
    _fastopt = _fo.Yogi
    _hyper = ("lr", "betas", "eps", "eps_root", "initial_accumulator_value", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-3, eps_root=0.0, initial_accumulator_value=1e-6,
                 *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class AdaBelief(_TorchOptimizer):
    __doc__ = ("AdaBelief on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_var``.\n\n"
               + (_fo.AdaBelief.__doc__ or ""))
    _fastopt = _fo.AdaBelief
    _hyper = ("lr", "betas", "eps", "eps_root", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, eps_root=1e-16, nesterov=False, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Adan(_TorchOptimizer):
    __doc__ = ("Adan on fastopt kernels (optax's rule). State: ``step``, ``exp_avg``, ``exp_avg_diff``, "
               "``exp_avg_sq``, ``pre_grad``.\n\n" + (_fo.Adan.__doc__ or ""))
    _fastopt = _fo.Adan
    _hyper = ("lr", "betas", "eps", "eps_root", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, eps_root=1e-8, weight_decay=0.0, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, eps_root=eps_root, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class _ScheduleFree(_TorchOptimizer):
    """``train()``/``eval()`` as the schedulefree package's optimizers: call ``eval()`` before
    evaluating (the parameters then hold x) and ``train()`` before training on (back to y)."""

    _scalar_dtype = np.float64  # max_lr and weight_sum: no torch convention; kept exactly

    def train(self):
        """Training mode: the parameters hold y (a no-op when already training)."""
        self._inner.train()

    def eval(self):
        """Evaluation mode: the parameters hold x; ``step()`` raises until ``train()``."""
        self._inner.eval()

    @property
    def training(self):
        return self._inner.training


class ScheduleFreeAdamW(_ScheduleFree):
    __doc__ = ("Schedule-free AdamW on fastopt kernels (optax's rule) with the schedulefree package's "
               "``AdamWScheduleFree`` argument order and ``train()``/``eval()``. State: ``step``, ``z``, ``x``, "
               "``exp_avg_sq``, ``max_lr``, ``weight_sum``.\n\n" + (_fo.ScheduleFreeAdamW.__doc__ or ""))
    _fastopt = _fo.ScheduleFreeAdamW
    _hyper = ("lr", "betas", "eps", "weight_decay", "warmup_steps", "weight_lr_power", "maximize")

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0,
                 weight_lr_power=2.0, *, maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class ScheduleFreeSGD(_ScheduleFree):
    __doc__ = ("Schedule-free SGD on fastopt kernels (optax's rule) with the schedulefree package's "
               "``SGDScheduleFree`` arguments (``momentum`` is optax's ``b1``) and ``train()``/``eval()``. "
               "State: ``step``, ``z``, ``x``, ``max_lr``, ``weight_sum``.\n\n" + (_fo.ScheduleFreeSGD.__doc__ or ""))
    _fastopt = _fo.ScheduleFreeSGD
    _hyper = ("lr", "momentum", "weight_decay", "warmup_steps", "weight_lr_power", "maximize")
    _renamed = {"momentum": "b1"}

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, weight_lr_power=2.0, *,
                 maximize=False, foreach=None, **options):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


#: the schedulefree package's names
AdamWScheduleFree = ScheduleFreeAdamW
SGDScheduleFree = ScheduleFreeSGD
