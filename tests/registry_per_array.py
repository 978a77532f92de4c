"""Test registry entries for the rules with per-array statistics: Lamb, LARS, Adafactor (torch's and Keras's).

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = [
    ("Lamb", {}),
    ("Lamb", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Lamb", dict(lr=0.02, maximize=True)),
    ("LARS", {}),
    ("LARS", dict(lr=0.1, weight_decay=1e-3, trust_coefficient=0.02, momentum=0.8, nesterov=True)),
    ("LARS", dict(lr=0.05, momentum=0.0, eps=1e-3)),  # no buffer
    ("LARS", dict(lr=0.03, weight_decay=0.01, maximize=True)),
    ("Adafactor", {}),
    ("Adafactor", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("Adafactor", dict(lr=1.0, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0)),  # rho = 1/sqrt(t) throughout
    ("Adafactor", dict(lr=0.1, eps=(1e-3, 1e-3), weight_decay=1e-2)),  # an eps1 that bites
    ("Adafactor", dict(convention="keras")),
    ("Adafactor", dict(convention="keras", lr=0.05, beta2_decay=-0.5, eps=(1e-30, 1e-2), d=0.5, weight_decay=0.1)),
    # lr > 1: the 1/sqrt(t) clamp binds whatever relative_step says
    ("Adafactor", dict(convention="keras", lr=2.0, relative_step=False, eps=(1e-20, 1e-3), maximize=True)),
]

REPRESENTATIVE = [
    ("Lamb", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("LARS", dict(lr=0.1, weight_decay=1e-3, trust_coefficient=0.02, momentum=0.8, nesterov=True)),
    ("Adafactor", dict(lr=0.1, eps=(1e-3, 1e-3), weight_decay=1e-2)),
    ("Adafactor", dict(convention="keras", lr=0.05, beta2_decay=-0.5, eps=(1e-30, 1e-2), d=0.5, weight_decay=0.1)),
]
