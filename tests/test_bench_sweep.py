"""``python -m fastopt bench-sweep``: the cliff rule and a small run (timings are not asserted)."""
from __future__ import annotations

import io

import numpy as np

from fastopt._bench import sweep


def pts(*gbps, noisy=()):
    return [{"gbps": g, "noisy": i in noisy} for i, g in enumerate(gbps)]


def test_a_dip_below_half_of_both_neighbours_is_a_cliff_a_step_down_is_not():
    assert sweep.cliffs(pts(10, 11, 4, 12, 12)) == [2]
    assert sweep.cliffs(pts(60, 50, 20, 15, 15)) == []  # leaving a cache level: a step, not a cliff
    assert sweep.cliffs(pts(10, 4, 10, 4, 10)) == [1, 3]
    assert sweep.cliffs(pts(10, 4, 10, noisy={1})) == []  # noisy points are not judged


def test_allocations_are_as_described():
    rng = np.random.default_rng(0)
    p, g = sweep.arrays(4096, np.float32, "offset64", rng)
    assert p.size == g.size == 4096 and p.ctypes.data % 64 == (p.base.ctypes.data + 64) % 64
    assert p.ctypes.data - p.base.ctypes.data == 64
    p, g = sweep.arrays(1000, np.float64, "staggered", rng)
    assert p.dtype == np.float64 and p.size == 1000


def test_small_sweep_prints_every_series_and_a_verdict():
    out = io.StringIO()
    rows, found = sweep.run(range(10, 13), configs=sweep.CONFIGS[:2], allocations=("heap", "staggered"),
                            backend="numba", repeat_time=0.002, out=out)
    text = out.getvalue()
    assert len(rows) == 2 * 2 * 3 and all(r["gbps"] > 0 for r in rows)
    for key in ("Adam/heap", "Adam-keras/staggered", "2^12"):
        assert key in text
    assert ("CLIFF" in text) == bool(found) and "0.00x" not in text
