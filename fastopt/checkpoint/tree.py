"""The saved tree as JSON: ``None``, bools, ints, strs and finite floats as themselves, every
other node a tagged object (see the package docstring), arrays moved out to a list. Nothing is
ever pickled; anything else is refused with a ``TypeError`` naming where it sits."""
from __future__ import annotations

import math
import struct

import numpy as np

_DTYPE_KINDS = "biufc"                 # bool, ints, floats, complex: no objects, no structs


def _check_dtype(dtype):
    return dtype.kind in _DTYPE_KINDS and dtype.fields is None and dtype.shape == () and dtype.itemsize > 0


def _encode(obj, arrays, where, active):
    """JSON-able description of ``obj``; arrays are appended to ``arrays``."""
    if isinstance(obj, np.generic) and not isinstance(obj, (str, bytes)):  # before float: np.float64 is one
        dtype = obj.dtype
        if not _check_dtype(dtype):
            raise TypeError(f"cannot save {where}: NumPy scalars of dtype {dtype} are not supported")
        return {"$": "scalar", "dtype": dtype.str, "bytes": np.asarray(obj).tobytes().hex()}
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        x = float(obj)
        if math.isfinite(x):
            return x
        return {"$": "float", "bits": struct.pack(">d", x).hex()}
    if isinstance(obj, np.ndarray):
        if not _check_dtype(obj.dtype):
            raise TypeError(f"cannot save {where}: arrays of dtype {obj.dtype} are not supported")
        arrays.append(obj)
        return {"$": "array", "index": len(arrays) - 1}
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in active:
            raise TypeError(f"cannot save {where}: it contains itself")
        active.add(id(obj))
        try:
            if isinstance(obj, dict):
                items = []
                for k, v in obj.items():
                    if isinstance(k, (dict, list, np.ndarray)):
                        raise TypeError(f"cannot save {where}: key {k!r} is not hashable")
                    items.append([_encode(k, arrays, f"{where} key {k!r}", active),
                                  _encode(v, arrays, f"{where}[{k!r}]", active)])
                return {"$": "dict", "items": items}
            out = [_encode(v, arrays, f"{where}[{i}]", active) for i, v in enumerate(obj)]
            return out if isinstance(obj, list) else {"$": "tuple", "items": out}
        finally:
            active.discard(id(obj))
    raise TypeError(f"cannot save {where}: {type(obj).__module__}.{type(obj).__qualname__} is not "
                    "a supported type (dicts, lists, tuples, NumPy arrays and scalars, "
                    "Python numbers, bools, strs and None)")


def _decode(node, arrays, used):
    """Inverse of ``_encode``; raises ValueError/TypeError/KeyError on a malformed node."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays, used) for v in node]
    if not isinstance(node, dict):
        raise ValueError(f"unexpected node {node!r}")
    tag = node.get("$")
    if tag == "dict":
        out = {}
        for pair in node["items"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("malformed dict item")
            key = _decode(pair[0], arrays, used)
            if isinstance(key, (list, dict, np.ndarray)):
                raise ValueError("unhashable dict key")
            if key in out:
                raise ValueError(f"duplicate dict key {key!r}")
            out[key] = _decode(pair[1], arrays, used)
        return out
    if tag == "tuple":
        if not isinstance(node["items"], list):
            raise ValueError("malformed tuple")
        return tuple(_decode(v, arrays, used) for v in node["items"])
    if tag == "float":
        bits = bytes.fromhex(node["bits"])
        if len(bits) != 8:
            raise ValueError("malformed float")
        return struct.unpack(">d", bits)[0]
    if tag == "scalar":
        dtype = np.dtype(node["dtype"])
        raw = bytes.fromhex(node["bytes"])
        if not _check_dtype(dtype) or len(raw) != dtype.itemsize:
            raise ValueError(f"malformed NumPy scalar of dtype {node['dtype']!r}")
        return np.frombuffer(raw, dtype)[0]
    if tag == "array":
        k = node["index"]
        if type(k) is not int or not 0 <= k < len(arrays) or k in used:
            raise ValueError(f"bad array index {k!r}")
        used.add(k)
        return arrays[k]
    raise ValueError(f"unknown node tag {tag!r}")
