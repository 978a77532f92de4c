"""Nothing is allocated per step: after the first step, a step takes no page faults.

Large temporaries (what a NumPy or torch for-loop step creates) come from fresh mmap'd pages, so
minor page faults count them; fastopt's step touches only memory allocated before it.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastopt
from fastopt import reference
from fastopt._bench.buffers import flat_pair
from fastopt._bench.impls import OPTIMIZERS
from tests.conftest import require_backend

resource = pytest.importorskip("resource")
N = 4_194_304  # temporaries this large are mmap'd: each one faults in ~4K pages


def faults(step, steps=10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
@pytest.mark.parametrize("clip", [{}, {"global_clipnorm": 1.0}, {"clipnorm": 1.0}])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_fastopt_step_takes_no_page_faults(name, clip, backend):
    require_backend(backend)
    p, g = flat_pair(N, np.float32)
    opt = getattr(fastopt, name)(p, backend=backend, **OPTIMIZERS[name], **clip)
    opt.step(g)
    opt.step(g)
    # a temporary of this size would fault ~4,096 pages every step; the process's other activity
    # (the Python heap growing, earlier tests' memory) can add a stray fault or two in total
    assert faults(lambda: opt.step(g)) < 1


def test_the_measurement_sees_numpy_temporaries():
    """The control: the NumPy reference allocates temporaries every step, and they fault."""
    p, g = flat_pair(N, np.float32)
    state = {}
    reference.adam_step(p, g, state)
    assert faults(lambda: reference.adam_step(p, g, state)) > 100
