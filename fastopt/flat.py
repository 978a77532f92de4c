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

from fastopt._validate import check_array_type

#: the dtype kinds a flat buffer holds: bool, signed and unsigned ints, floats, complex
_NUMERIC = "biufc"
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
        arrays: a sequence of array-likes of numbers (a single array is treated as ``[array]``;
            ndarray subclasses other than np.memmap raise TypeError, as masked arrays would lose
            their mask).
        dtype: dtype of the buffer, numeric and native; default: the common type of the arrays.
            Each array must cast to it within its kind (float64 to float32 and int to float do;
            complex to real and float to int raise TypeError rather than drop values).

    Example:
        >>> flat, (w, b) = flatten([np.zeros((3, 2)), np.ones(2)])
        >>> flat.shape, w.shape, np.shares_memory(flat, b)
        ((8,), (3, 2), True)
    """
    arrays = _numeric_arrays(arrays)
    if dtype is None:
        dtype = np.result_type(*arrays) if arrays else np.float32
    dtype = _buffer_dtype(dtype)
    for i, a in enumerate(arrays):
        if not np.can_cast(a.dtype, dtype, "same_kind"):  # complex to real, float to int: values lost
            raise TypeError(f"arrays[{i}] has dtype {a.dtype}, which does not cast to the buffer's {dtype} "
                            "within its kind; convert it first if that is meant")
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


def _numeric_arrays(arrays):
    """``arrays`` as plain NumPy arrays of numbers; a TypeError/ValueError naming ``arrays[i]``
    for anything else (ndarray subclasses but np.memmap: a masked array's mask would be dropped)."""
    if isinstance(arrays, np.ndarray):
        arrays = [arrays]
    elif isinstance(arrays, (str, bytes, dict)) or not hasattr(arrays, "__iter__"):
        raise TypeError(f"flatten: arrays must be a sequence of arrays, got {type(arrays).__name__}")
    out = []
    for i, a in enumerate(arrays):
        where = f"arrays[{i}]"
        if isinstance(a, np.ndarray):
            check_array_type(a, where)
        try:
            x = np.asarray(a)
        except (TypeError, ValueError) as e:  # ragged nesting, an object numpy cannot read
            raise ValueError(f"{where} is not an array of numbers: {e}") from None
        if x.dtype.kind not in _NUMERIC:
            raise TypeError(f"{where} has dtype {x.dtype}; flatten packs arrays of numbers")
        out.append(x)
    return out


def _buffer_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"flatten: dtype {dtype!r} is not a NumPy dtype") from None
    if dtype.kind not in _NUMERIC or not dtype.isnative:
        raise TypeError(f"flatten: dtype must be a numeric dtype in native byte order, got {dtype}")
    return dtype


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
