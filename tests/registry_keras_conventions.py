"""Test registry entries for Keras's conventions of the foundation's optimizers (SGD, Adam, RMSprop, Adagrad with convention='keras').

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = []

REPRESENTATIVE = []
