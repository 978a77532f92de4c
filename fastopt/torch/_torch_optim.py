"""The drop-ins for torch.optim's own optimizers, each with torch's signature and defaults: ``SGD``,
``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``, ``Adadelta``, ``Adamax``, ``RAdam``, ``Rprop``, and
``NAdam``, ``ASGD``, ``Adafactor``, ``Muon`` (their state as torch names and shapes it). Each
class names the fastopt optimizer behind it and the hyperparameters it takes from a param group;
everything else is ``_adapter._TorchOptimizer``'s."""
from __future__ import annotations

import torch

from fastopt import optimizers as _fo
from fastopt.torch._adapter import _switches, _TorchOptimizer


class SGD(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.SGD`` on fastopt kernels.\n\n" + (_fo.SGD.__doc__ or "")
    _fastopt = _fo.SGD
    _hyper = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None, **options):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach, differentiable=differentiable,
                                                              fused=fused), **options)


class Adam(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adam`` on fastopt kernels.\n\n" + (_fo.Adam.__doc__ or "")
    _fastopt = _fo.Adam
    _hyper = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused), **options)

    def _fastopt_class(self):
        decoupled = self.defaults.get("decoupled_weight_decay", False)
        return _fo.AdamW if decoupled else _fo.Adam


class AdamW(Adam):
    __doc__ = "Drop-in ``torch.optim.AdamW`` on fastopt kernels.\n\n" + (_fo.AdamW.__doc__ or "")
    _fastopt = _fo.AdamW

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None, **options):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True, **options)


class RMSprop(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.RMSprop`` on fastopt kernels.\n\n" + (_fo.RMSprop.__doc__ or "")
    _fastopt = _fo.RMSprop
    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            capturable=capturable, foreach=foreach, differentiable=differentiable), **options)


class Adagrad(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adagrad`` on fastopt kernels.\n\n" + (_fo.Adagrad.__doc__ or "")
    _fastopt = _fo.Adagrad
    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None, **options):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach, differentiable=differentiable,
                                                              fused=fused), **options)


class Adadelta(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adadelta`` on fastopt kernels.\n\n" + (_fo.Adadelta.__doc__ or "")
    _fastopt = _fo.Adadelta
    _hyper = ("lr", "rho", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Adamax(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Adamax`` on fastopt kernels.\n\n" + (_fo.Adamax.__doc__ or "")
    _fastopt = _fo.Adamax
    _hyper = ("lr", "betas", "eps", "weight_decay", "maximize")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class RAdam(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.RAdam`` on fastopt kernels.\n\n" + (_fo.RAdam.__doc__ or "")
    _fastopt = _fo.RAdam
    _hyper = ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Rprop(_TorchOptimizer):
    __doc__ = "Drop-in ``torch.optim.Rprop`` on fastopt kernels.\n\n" + (_fo.Rprop.__doc__ or "")
    _fastopt = _fo.Rprop
    _hyper = ("lr", "etas", "step_sizes", "maximize")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False, **options):
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


# ---------------------------------------------------------------------------------- the rest of torch.optim
class NAdam(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.NAdam`` on fastopt kernels. State as torch's: ``step``, ``mu_product`` "
               "(0-dim tensors), ``exp_avg``, ``exp_avg_sq``.\n\n" + (_fo.NAdam.__doc__ or ""))
    _fastopt = _fo.NAdam
    _hyper = ("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "maximize")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, **options):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class ASGD(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.ASGD`` on fastopt kernels. State as torch's: ``step``, ``eta``, ``mu`` "
               "(0-dim tensors), ``ax``.\n\n" + (_fo.ASGD.__doc__ or ""))
    _fastopt = _fo.ASGD
    _hyper = ("lr", "lambd", "alpha", "t0", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, **options):
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(
            foreach=foreach, capturable=capturable, differentiable=differentiable), **options)


class Adafactor(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.Adafactor`` on fastopt kernels. State as torch's: ``step``, and "
               "``row_var``/``col_var`` (shapes ``(..., m, 1)``/``(..., 1, n)``) for tensors of 2 or more "
               "dimensions, ``variance`` for vectors and scalars.\n\n" + (_fo.Adafactor.__doc__ or ""))
    _fastopt = _fo.Adafactor
    _hyper = ("lr", "beta2_decay", "eps", "d", "weight_decay", "maximize")

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, *,
                 foreach=None, maximize=False, **options):
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, switches=_switches(foreach=foreach), **options)


class Muon(_TorchOptimizer):
    __doc__ = ("Drop-in ``torch.optim.Muon`` on fastopt (2-D parameters only, as torch). State as torch's: "
               "``momentum_buffer`` (no ``step``). The Newton-Schulz iterations run in the parameter's dtype, "
               "torch's in bfloat16 (see the warning below).\n\n" + (_fo.Muon.__doc__ or ""))
    _fastopt = _fo.Muon
    _hyper = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn")

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=_fo.muon.NS_COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, **options):
        if isinstance(lr, torch.Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults, switches={}, **options)
