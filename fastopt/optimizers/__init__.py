"""Optimizer classes: thin wrappers over the kernels, with torch's names and defaults."""
from fastopt.optimizers.adagrad import Adagrad
from fastopt.optimizers.adam import Adam, AdamW
from fastopt.optimizers.base import Optimizer
from fastopt.optimizers.rmsprop import RMSprop
from fastopt.optimizers.sgd import SGD

# torch family

# keras / optax family

# per-array family

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
