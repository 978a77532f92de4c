"""State bookkeeping shared by the NumPy references: creating a state entry on the first step, counting steps."""
import numpy as np


def _zeros_state(state, key, p):
    if state.get(key) is None:
        state[key] = np.zeros_like(p)
    return state[key]


def _next_step(state):
    state["step"] = int(state.get("step", 0)) + 1
    return state["step"]


def _full_state(state, key, shape, dtype, value):
    if state.get(key) is None:
        state[key] = np.full(shape, float(value), dtype=dtype)
    return state[key]
