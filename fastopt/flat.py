"""Flat buffers: one contiguous, staggered allocation for many arrays.

Buffers that start exactly a power of two apart (as large allocations do: every mmap'd
block starts at the same offset in its page) map the same elements to the same cache sets;
Adam over such p, g, m, v ran 2.8-4.7x slower here (DESIGN.md section 5). Every buffer this
module allocates starts at a different multiple of 320 bytes (5 cache lines) past a page
boundary, rotating over 12 slots, so the buffers of one step never alias each other.
"""
from __future__ import annotations

import itertools

import numpy as np

PAGE = 4096
STAGGER = 320
_slots = itertools.count()


def alloc_staggered(n, dtype, fill=0.0):
    """A 1-D array of ``n`` elements of ``dtype``, 64-byte aligned, offset from page starts
    by the next stagger slot, and filled with ``fill`` (``None``: left uninitialized)."""
    dtype = np.dtype(dtype)
    offset = (next(_slots) % 12 + 1) * STAGGER
    raw = np.empty(n * dtype.itemsize + PAGE + offset, dtype=np.uint8)
    start = (-raw.ctypes.data) % PAGE + offset
    out = raw[start:start + n * dtype.itemsize].view(dtype)
    if fill is not None:
        out.fill(fill)
    return out


def flatten(arrays, dtype=None):
    """Pack ``arrays`` into one contiguous buffer; return ``(flat, views)``.

    ``views[i]`` has the shape of ``arrays[i]``, holds a copy of its values and shares
    memory with ``flat``. Give the views to an optimizer (or the flat buffer itself) and
    write gradients into views of a second ``flatten``: parameters that are consecutive in
    one buffer step in one kernel call.

    Args:
        arrays: a sequence of array-likes (a single array is treated as ``[array]``).
        dtype: dtype of the buffer; default: the common type of the arrays.

    Example:
        >>> flat, (w, b) = flatten([np.zeros((3, 2)), np.ones(2)])
        >>> flat.shape, w.shape, np.shares_memory(flat, b)
        ((8,), (3, 2), True)
    """
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    arrays = [np.asarray(a) for a in arrays]
    if dtype is None:
        dtype = np.result_type(*arrays) if arrays else np.float32
    dtype = np.dtype(dtype)
    sizes = [a.size for a in arrays]
    flat = alloc_staggered(sum(sizes), dtype, fill=None)
    views = []
    offset = 0
    for a, size in zip(arrays, sizes):
        view = flat[offset:offset + size].reshape(a.shape)
        view[...] = a
        views.append(view)
        offset += size
    return flat, views


def layout(views):
    """``(offsets, shapes)`` of ``views`` inside their common buffer (offsets in bytes).

    Raises ValueError if the views are not all views of one contiguous owner buffer.
    """
    offsets, shapes = [], []
    owner = None
    for i, v in enumerate(views):
        base = _owner(v)
        if base is None or (owner is not None and base is not owner):
            raise ValueError(f"views[{i}] is not a view of the same flat buffer")
        owner = base
        offsets.append(address(v) - address(base))
        shapes.append(v.shape)
    return offsets, shapes


def _owner(a):
    """The C-contiguous array whose memory ``a`` views (``a`` itself if it owns its data),
    or None if ``a`` is not a contiguous view of such an array."""
    base = a if a.base is None else a.base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous or not a.flags.c_contiguous:
        return None
    return base


def span_view(owner, byte_offset, n, dtype):
    """The 1-D ``dtype`` view of ``n`` elements at ``byte_offset`` bytes into ``owner``."""
    raw = owner if (owner.ndim == 1 and owner.dtype == np.uint8) else owner.reshape(-1).view(np.uint8)
    return raw[byte_offset:byte_offset + n * dtype.itemsize].view(dtype)


def address(a):
    """Address of the first element of ``a``."""
    return a.__array_interface__["data"][0]
