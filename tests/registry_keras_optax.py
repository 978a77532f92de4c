"""Test registry entries for the Keras and optax elementwise rules: Ftrl, Lion, Yogi, AdaBelief, Adan, ScheduleFreeAdamW, ScheduleFreeSGD.

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = [
    ("Ftrl", {}),
    ("Ftrl", dict(lr=0.05, learning_rate_power=-0.7, initial_accumulator_value=0.5, l1=0.01, l2=0.02)),
    ("Ftrl", dict(lr=0.02, l2_shrinkage=0.05, beta=0.3, weight_decay=0.01)),
    ("Ftrl", dict(lr=0.1, learning_rate_power=0.0, initial_accumulator_value=0.0, l1=1e-3, maximize=True)),
    ("Ftrl", dict(lr=0.03, learning_rate_power=-1.0, l2=0.1, beta=1.0, l2_shrinkage=0.01)),
    ("Lion", {}),
    ("Lion", dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.1)),
    ("Lion", dict(lr=1e-2, betas=(1.0, 0.5), weight_decay=0.01, maximize=True)),  # Keras allows beta_1 = 1
    ("Yogi", {}),
    ("Yogi", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-4)),
    ("Yogi", dict(lr=0.01, eps_root=1e-8, initial_accumulator_value=1e-3, maximize=True)),
    ("AdaBelief", {}),
    ("AdaBelief", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, eps_root=1e-10)),
    ("AdaBelief", dict(lr=0.01, nesterov=True, maximize=True)),
    ("Adan", {}),
    ("Adan", dict(lr=0.01, betas=(0.9, 0.8, 0.95), eps=1e-6, eps_root=0.0, weight_decay=0.05)),
    ("Adan", dict(lr=0.005, weight_decay=0.01, maximize=True)),
    ("ScheduleFreeAdamW", {}),
    ("ScheduleFreeAdamW", dict(lr=0.01, warmup_steps=8, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("ScheduleFreeAdamW", dict(lr=0.005, weight_lr_power=1.0, weight_decay=0.01, maximize=True)),
    ("ScheduleFreeAdamW", dict(lr=0.02, warmup_steps=64, betas=(0.95, 0.9))),  # still warming up at the end
    ("ScheduleFreeSGD", {}),
    ("ScheduleFreeSGD", dict(lr=0.1, warmup_steps=4, b1=0.8, weight_decay=0.01)),
    ("ScheduleFreeSGD", dict(lr=0.003, weight_lr_power=3.0, b1=0.0, maximize=True)),
]

REPRESENTATIVE = [
    ("Ftrl", dict(lr=0.05, learning_rate_power=-0.7, initial_accumulator_value=0.5, l1=0.01, l2=0.02)),
    ("Lion", dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.1)),
    ("Yogi", dict(lr=0.01, eps_root=1e-8, initial_accumulator_value=1e-3, maximize=True)),
    ("AdaBelief", dict(lr=0.01, nesterov=True, maximize=True)),
    ("Adan", dict(lr=0.01, betas=(0.9, 0.8, 0.95), eps=1e-6, eps_root=0.0, weight_decay=0.05)),
    ("ScheduleFreeAdamW", dict(lr=0.01, warmup_steps=8, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("ScheduleFreeSGD", dict(lr=0.1, warmup_steps=4, b1=0.8, weight_decay=0.01)),
]
