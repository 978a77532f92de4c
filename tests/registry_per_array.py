"""Test registry entries for the rules with per-array statistics: Lamb, LARS, Adafactor (torch's and Keras's).

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = []

REPRESENTATIVE = []
