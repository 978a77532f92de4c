"""Optimizer classes: thin wrappers over the kernels, with torch's names and defaults."""
from fastopt.optimizers.adagrad import Adagrad
from fastopt.optimizers.adam import Adam, AdamW
from fastopt.optimizers.base import Optimizer
from fastopt.optimizers.rmsprop import RMSprop
from fastopt.optimizers.sgd import SGD

# torch family
from fastopt.optimizers.adadelta import Adadelta
from fastopt.optimizers.adamax import Adamax
from fastopt.optimizers.asgd import ASGD
from fastopt.optimizers.nadam import NAdam, Nadam
from fastopt.optimizers.radam import RAdam
from fastopt.optimizers.rprop import Rprop

# keras / optax family
from fastopt.optimizers.adan import Adan
from fastopt.optimizers.ftrl import Ftrl
from fastopt.optimizers.lion import Lion
from fastopt.optimizers.moments import AdaBelief, Yogi
from fastopt.optimizers.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD

# per-array family
from fastopt.optimizers.adafactor import Adafactor
from fastopt.optimizers.lamb import Lamb
from fastopt.optimizers.lars import LARS

# matrix family
from fastopt.optimizers.muon import Muon

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
__all__ += ["Adadelta", "Adamax", "NAdam", "Nadam", "RAdam", "Rprop", "ASGD"]  # torch family
__all__ += ["Ftrl", "Lion", "Yogi", "AdaBelief", "Adan", "ScheduleFreeAdamW", "ScheduleFreeSGD"]  # keras / optax family
__all__ += ["Lamb", "LARS", "Adafactor"]  # per-array family
__all__ += ["Muon"]  # matrix family
