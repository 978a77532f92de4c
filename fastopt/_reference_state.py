"""State bookkeeping shared by the NumPy references (``fastopt.reference`` and
``fastopt.reference_keras_optax``), kept apart so that either imports first."""
import numpy as np


def _zeros_state(state, key, p):
    if state.get(key) is None:
        state[key] = np.zeros_like(p)
    return state[key]


def _next_step(state):
    state["step"] = int(state.get("step", 0)) + 1
    return state["step"]
