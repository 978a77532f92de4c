"""The optimizer base: the composition of the core's concerns (``fastopt.optimizers.core``).

A rule class (``adam.py`` ...) subclasses ``Optimizer`` and gives its hyperparameters
(``_check_hyper``), its state names, its kernel and the kernel's per-step scalars; everything
else (groups, state storage, the training-loop options, the step pipeline, state_dicts, EMA)
is the core's, one module per concern.
"""
from __future__ import annotations

from fastopt import _backends
from fastopt._validate import count_or_none, flag
from fastopt.optimizers.core.ema import WeightEMA
from fastopt.optimizers.core.groups import ParamGroup, ParamGroups, _as_groups
from fastopt.optimizers.core.options import TrainingLoopOptions
from fastopt.optimizers.core.state_dict import StateDictIO
from fastopt.optimizers.core.step import StepPipeline
from fastopt.optimizers.core.storage import StateStorage

__all__ = ["Optimizer", "ParamGroup"]


class Optimizer(ParamGroups, StateStorage, TrainingLoopOptions, StepPipeline, StateDictIO, WeightEMA):
    """Base class: subclasses give the kernel, the state names and the per-step scalars.

    Args common to every optimizer (keyword-only):
        maximize: ascend instead of descend (torch).
        clipnorm: clip each gradient array to this L2 norm (Keras).
        clipvalue: clip every gradient element to [-clipvalue, clipvalue] (Keras).
        global_clipnorm: clip all gradients together to this global L2 norm (Keras).
        use_ema: keep an exponential moving average of the parameters (Keras), updated in the
            same pass as the parameters: ``ema = m * ema + (1 - m) * p`` after each step
            (``m = 0`` on the first). ``ema_params``, ``swap_ema()``, ``finalize_variable_values()``.
        ema_momentum: ``m`` (0.99). ema_overwrite_frequency: every this many steps the
            parameters are overwritten with their average (Keras; None: never).
        gradient_accumulation_steps: ``k`` >= 2: each call adds its gradient to an accumulator and
            every k-th call updates with the mean of the k gradients (Keras 3's semantics: the step
            count, bias corrections and first-step rules count updates, a learning-rate schedule
            sees the number of calls, the weight EMA advances on every call with momentum 0
            throughout the first window, and ``ema_overwrite_frequency`` counts updates).
        flush_denormals: run the kernels with the CPU's flush-to-zero and denormals-are-zero modes
            (FTZ/DAZ, in every thread that runs a chunk, restored after it): denormal inputs read
            as 0 and denormal results become 0, which keeps denormal-heavy steps at full speed
            but changes those results (torch.optim, whose kernels do not flush, would keep the
            tiny values). Off by default; every rule (each pass of the multi-pass ones) on x86-64
            with the numba and cython backends (the python backend and other CPUs run unflushed).
        skip_nonfinite: check the gradients first (one reduction pass, the one global-norm
            clipping makes anyway) and skip a step with an inf or NaN, leaving parameters, states,
            EMA and step counts untouched; ``skipped_steps`` counts them (optax's apply_if_finite).
        backend: 'numba', 'cython' or 'python' for this optimizer (default: the active one).
    """

    #: kernel name in fastopt._kernels
    kernel = None
    #: every per-parameter state array, in the kernel's argument order
    state_names = ()
    #: whether state carries a step counter (torch's SGD has none)
    counts_steps = True
    #: per-parameter scalar state that follows from the step and the hyperparameters (NAdam's
    #: mu_product): exported by ``state``/``state_dict`` from ``_scalar_state``, ignored on load
    scalar_state_names = ()
    #: one kernel call per parameter array (rules with per-array statistics: LAMB, LARS,
    #: Adafactor), never one call for a run of adjacent arrays
    per_array = False
    #: whether ``_run_call`` replaces the single kernel call of each call (multi-pass rules)
    custom_call = False
    #: words per element a multi-pass rule moves beyond one read-modify-write pass over p and its
    #: states and one read of g (LAMB re-reads p, m, v and writes p: 4); the bench counts them
    extra_words_per_element = 0
    #: None (per-step scalar state in double), or the rounding of the scalar type a framework
    #: keeps it in (fastopt.torch sets float32's where torch's default dtype is float32, so that
    #: NAdam's mu_product and ASGD's eta and mu round as torch.optim's do)
    _scalar_round = None
    #: None, or a function of the per-call sums of squares that returns them summed over every
    #: process holding a shard of the same parameters (fastopt.torch sets it for FSDP2's DTensors)
    _reduce_sums = None

    def __init__(self, params, defaults, *, backend=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 gradient_accumulation_steps=None, skip_nonfinite=False, flush_denormals=False):
        self.defaults = dict(defaults)
        self._check_group(self.defaults, "defaults")
        if backend is not None:
            _backends.backend(backend)  # fail now, not at the first step
        self._backend_name = backend
        self._clipnorm = self._clipvalue = self._global_clipnorm = None
        self._use_ema = flag("use_ema", use_ema)
        self._gradient_accumulation_steps = count_or_none("gradient_accumulation_steps",
                                                          gradient_accumulation_steps, 2)
        self._skip_nonfinite = False
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.skip_nonfinite = skip_nonfinite
        self._plan = None
        self.flush_denormals = flush_denormals
        self._seen_edit = -1  # the _edits count _hyper was validated at
        #: steps skipped for a non-finite gradient (skip_nonfinite or a LossScaler)
        self.skipped_steps = 0
        #: calls of ``step`` that counted (with gradient accumulation: micro-steps included);
        #: Keras's ``_iterations``
        self._calls = 0
        self.param_groups = []
        self._params = []
        self._steps = []
        self._buffers = []        # every state buffer, for overlap checks
        self._spans = None        # sorted byte spans of params and states (lazy)
        groups, self._grouped = _as_groups(params)
        for group in groups:
            self.add_param_group(group)

    def _check_hyper(self, group, where):  # pragma: no cover - abstract
        raise NotImplementedError

    def _scalars(self, hyper, step):  # pragma: no cover - abstract
        """The kernel scalars that change with the step (1-based), first after the state arrays."""
        raise NotImplementedError

    def _static_scalars(self, hyper):  # pragma: no cover - abstract
        """The kernel scalars that follow ``_scalars``'s and only change when a group is edited."""
        raise NotImplementedError
