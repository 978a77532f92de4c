"""Test registry entries for Keras's conventions of the foundation's optimizers (SGD, Adam, RMSprop, Adagrad with convention='keras').

``CONFIGS``: (class name in ``fastopt``, hyperparameters) pairs that every parametrized
specification test runs against ``fastopt.reference.Reference(name, ..., **hyperparameters)``;
``REPRESENTATIVE``: one demanding configuration per optimizer, a subset of ``CONFIGS``, for the
costlier tests.
"""

_SGD = ("SGD", dict(convention="keras", lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True))
_ADAM = ("Adam", dict(convention="keras", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05))
_ADAMW = ("AdamW", dict(convention="keras", lr=0.02, weight_decay=0.1, amsgrad=True, betas=(0.85, 0.995)))
_RMSPROP = ("RMSprop", dict(convention="keras", lr=0.002, centered=True, momentum=0.5, weight_decay=0.1))
_ADAGRAD = ("Adagrad", dict(convention="keras", lr=0.05, initial_accumulator_value=0.5, eps=1e-6,
                            weight_decay=0.01))

CONFIGS = [
    ("SGD", dict(convention="keras")),                                    # Keras's defaults: lr 0.01
    ("SGD", dict(convention="keras", lr=0.03, momentum=0.9)),
    ("SGD", dict(convention="keras", lr=0.05, weight_decay=0.05, nesterov=True)),  # Nesterov without momentum
    _SGD,
    ("Adam", dict(convention="keras")),                                   # eps 1e-7
    _ADAM,
    ("Adam", dict(convention="keras", lr=0.01, amsgrad=True, maximize=True, betas=(0.3, 0.9))),
    ("AdamW", dict(convention="keras")),                                  # weight_decay 0.004
    _ADAMW,
    ("RMSprop", dict(convention="keras")),                                # lr 1e-3, rho 0.9, eps 1e-7
    ("RMSprop", dict(convention="keras", lr=0.003, alpha=0.8, weight_decay=0.01, momentum=0.7)),
    ("RMSprop", dict(convention="keras", lr=0.003, centered=True, eps=1e-6, maximize=True)),
    _RMSPROP,
    ("Adagrad", dict(convention="keras")),                                # accumulator 0.1, lr 1e-3
    _ADAGRAD,
    ("Adagrad", dict(convention="keras", lr=0.05, initial_accumulator_value=0.0, eps=1e-3, maximize=True)),
]

REPRESENTATIVE = [_SGD, _ADAM, _ADAMW, _RMSPROP, _ADAGRAD]
