"""Test registry entries for the Keras and optax elementwise rules: Ftrl, Lion, Yogi, AdaBelief, Adan, ScheduleFreeAdamW, ScheduleFreeSGD.

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = []

REPRESENTATIVE = []
