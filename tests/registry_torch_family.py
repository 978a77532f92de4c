"""Test registry entries for the rest of torch.optim's elementwise rules: Adadelta, Adamax, NAdam (and Keras's Nadam variant), RAdam, Rprop, ASGD.

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

CONFIGS = [
    ("Adadelta", {}),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2)),
    ("Adadelta", dict(lr=2.0, rho=0.3, maximize=True)),
    ("Adamax", {}),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), maximize=True)),  # 1 - beta1 >= 0.5: lerp's other branch
    ("NAdam", {}),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=1e-2)),
    ("NAdam", dict(lr=0.005, betas=(0.3, 0.95), maximize=True, weight_decay=1e-3)),
    # Keras 3's Nadam: its defaults (lr 1e-3, eps 1e-7), its decoupled decay applied first
    ("NAdam", dict(convention="keras")),
    ("NAdam", dict(convention="keras", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("NAdam", dict(convention="keras", lr=0.005, betas=(0.95, 0.9), maximize=True)),
    ("RAdam", {}),  # plain momentum for 5 steps, rectified from step 6
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.005, betas=(0.4, 0.75), maximize=True)),  # rho_inf = 7: rectified from step 8
    ("RAdam", dict(lr=0.005, betas=(0.9, 0.5))),  # rho_inf = 3: never rectified
    ("Rprop", {}),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.1))),
    ("Rprop", dict(lr=1e-2, step_sizes=(5e-3, 2e-2))),  # both bounds bite within a few steps
    ("Rprop", dict(lr=1e-3, etas=(0.6, 1.1), maximize=True)),
    ("Rprop", dict(lr=1e-2, weight_decay=0.5)),  # fastopt's extension: L2 before the sign
    ("ASGD", {}),
    ("ASGD", dict(lr=0.02, lambd=1e-3, alpha=0.6, t0=10, weight_decay=1e-2)),  # averaging from step 13
    ("ASGD", dict(lr=0.05, lambd=0.0, t0=3, maximize=True)),  # averaging from step 6
]

REPRESENTATIVE = [
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2)),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, momentum_decay=1e-2)),
    ("NAdam", dict(convention="keras", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Rprop", dict(lr=1e-2, step_sizes=(5e-3, 2e-2))),
    ("ASGD", dict(lr=0.05, lambd=0.0, t0=3, maximize=True)),
]
