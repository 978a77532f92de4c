"""The tables of every NumPy reference rule by name (``STEPS``, ``STATE_NAMES``, ``SCALAR_STATE_NAMES``: torch's
rules, then Keras's and optax's, then Keras's conventions of the torch rules) and ``Reference``, the optimizer over
a list of arrays that runs them."""
from __future__ import annotations

from fastopt.reference import keras_conventions as conventions
from fastopt.reference import keras_family, optax_family
from fastopt.reference.clip import keras_clip
from fastopt.reference.torch_family import (adadelta_step, adafactor_step, adamax_step, asgd_step, nadam_step,
                                            radam_step, rprop_step)
from fastopt.reference.torch_foundation import adagrad_step, adam_step, adamw_step, rmsprop_step, sgd_step

__all__ = ["STEPS", "STATE_NAMES", "SCALAR_STATE_NAMES", "Reference"]

STEPS = {"SGD": sgd_step, "Adam": adam_step, "AdamW": adamw_step, "RMSprop": rmsprop_step,
         "Adagrad": adagrad_step, "Adadelta": adadelta_step, "Adamax": adamax_step, "NAdam": nadam_step,
         "RAdam": radam_step, "Rprop": rprop_step, "ASGD": asgd_step, "Adafactor": adafactor_step}

#: the per-element state arrays of each rule (besides ``step``), torch's names in the order torch creates them.
#: Every one has the parameter's shape and dtype except Adafactor's ``row_var`` (shape[:-1] + (1,)) and
#: ``col_var`` (shape[:-2] + (1, shape[-1])), which exist only for ndim >= 2, where ``variance`` does not.
#: Entries marked conditional exist only with the option: SGD's momentum_buffer (momentum != 0), Adam's and
#: AdamW's max_exp_avg_sq (amsgrad), RMSprop's momentum_buffer (momentum > 0) and grad_avg (centered).
STATE_NAMES = {"SGD": ("momentum_buffer",), "Adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "AdamW": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "RMSprop": ("square_avg", "momentum_buffer", "grad_avg"), "Adagrad": ("sum",),
               "Adadelta": ("square_avg", "acc_delta"), "Adamax": ("exp_avg", "exp_inf"),
               "NAdam": ("exp_avg", "exp_avg_sq"), "RAdam": ("exp_avg", "exp_avg_sq"),
               "Rprop": ("prev", "step_size"), "ASGD": ("ax",), "Adafactor": ("row_var", "col_var", "variance")}

#: the per-array scalar state (Python floats here, 0-d tensors of the default dtype in torch), in torch's order:
#: the full torch state of a rule is ``step``, then these, then its STATE_NAMES (NAdam: step, mu_product,
#: exp_avg, exp_avg_sq; ASGD: step, eta, mu, ax).
SCALAR_STATE_NAMES = {"NAdam": ("mu_product",), "ASGD": ("eta", "mu")}


class Reference:
    """Reference optimizer over a list of arrays: ``Reference("Adam", params, clipnorm=..., **hyper).step(grads)``.

    Each step multiplies the gradients by ``grad_scale`` (new arrays), applies ``keras_clip`` when a clipping
    keyword is set, then ``STEPS[name]`` to each array with its own state dict. ``params`` are updated in place;
    ``state`` is the list of per-array state dicts.
    """

    def __init__(self, name, params, *, clipnorm=None, clipvalue=None, global_clipnorm=None, **hyper):
        convention = hyper.pop("convention", "torch")
        if convention != "torch":  # a source's variant of a rule: STEPS["NAdam:keras"]
            name = f"{name}:{convention}"
        if name not in STEPS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(STEPS)}")
        # validate the clipping keywords now, as Keras does in the constructor
        keras_clip([], clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm)
        self.name = name
        self.params = list(params)
        self.hyper = hyper
        self.clip = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        self.state = [{} for _ in self.params]

    def step(self, grads, grad_scale=1.0):
        """Apply one update with ``grads`` (one array per parameter); ``grads`` are not modified."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradients, got {len(grads)}")
        grad_scale = float(grad_scale)
        grads = [g * grad_scale for g in grads]
        if any(v is not None for v in self.clip.values()):
            grads = keras_clip(grads, **self.clip)
        update = STEPS[self.name]
        for p, g, state in zip(self.params, grads, self.state):
            update(p, g, state, **self.hyper)


def _merge_sources():
    """The Keras and optax rules join STEPS; a source's variant of a torch rule is keyed
    ``"<torch name>:<source>"`` (``Reference("NAdam", ..., convention="keras")``)."""
    variants = {"KerasNadam": "NAdam:keras", "KerasAdafactor": "Adafactor:keras"}
    for other in (keras_family, optax_family):
        for table, theirs in ((STEPS, other.STEPS), (STATE_NAMES, other.STATE_NAMES),
                              (SCALAR_STATE_NAMES, other.SCALAR_STATE_NAMES)):
            table.update({variants.get(k, k): v for k, v in theirs.items()})
    # Keras's conventions of the rules above, keyed "SGD:keras" ... (no scalar state)
    STEPS.update(conventions.STEPS)
    STATE_NAMES.update(conventions.STATE_NAMES)


_merge_sources()
