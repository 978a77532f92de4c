"""Flat buffers: the layout of flatten()'s views and the staggering of allocations."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt
from fastopt.flat import PAGE, STAGGER, address, alloc_staggered, layout


def test_layout_gives_each_views_byte_offset_and_shape():
    arrays = [np.ones((3, 4), np.float32), np.ones(5, np.float32), np.ones((2, 1, 2), np.float32)]
    flat, views = fastopt.flatten(arrays)
    offsets, shapes = layout(views)
    assert shapes == [(3, 4), (5,), (2, 1, 2)]
    assert offsets[1] - offsets[0] == 12 * 4 and offsets[2] - offsets[1] == 5 * 4
    assert [address(v) - address(flat) for v in views] == [o - offsets[0] for o in offsets]


def test_layout_rejects_views_of_different_buffers():
    _, a = fastopt.flatten([np.ones(3)])
    _, b = fastopt.flatten([np.ones(3)])
    with pytest.raises(ValueError, match=r"views\[1\] is not a view of the same flat buffer"):
        layout([a[0], b[0]])


def test_staggered_buffers_start_at_distinct_offsets_within_a_page():
    starts = {address(alloc_staggered(1 << 16, np.float32)) % PAGE for _ in range(12)}
    assert len(starts) == 12 and all(s % STAGGER == 0 and s % 64 == 0 for s in starts)
