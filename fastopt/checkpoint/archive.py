"""The file format, both ways: a stored zip of ``.npy`` members, a JSON header with each
array's SHA-256, the header's own SHA-256; ``read`` verifies all of it before returning."""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import zipfile

import numpy as np

from fastopt.checkpoint.tree import _check_dtype, _decode, _encode

#: the header's ``format`` field
FORMAT_NAME = "fastopt-checkpoint"
#: the format version this module writes; it reads versions 1 .. FORMAT_VERSION
FORMAT_VERSION = 1

_HEADER = "fastopt_checkpoint.json"
_HEADER_SUM = "fastopt_checkpoint.sha256"
_CHUNK = 1 << 20                       # bytes per write/hash step
_DATE = (1980, 1, 1, 0, 0, 0)          # fixed member times: equal saves give equal files


class CheckpointError(ValueError):
    """A file is not a valid fastopt checkpoint, or does not fit the optimizer/params given."""



def _bytes_of(a):
    """The raw bytes of ``a`` in C order, as a flat uint8 array (no copy when contiguous)."""
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    return a.reshape(-1).view(np.uint8)


def _member_info(name, size):
    info = zipfile.ZipInfo(name, date_time=_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    info.file_size = size
    return info


def _write_array(zf, name, a):
    """Write ``a`` as a .npy member, hashing exactly the bytes written; returns the digest."""
    head = io.BytesIO()
    d = np.lib.format.header_data_from_array_1_0(a)
    d["fortran_order"] = False
    try:
        np.lib.format.write_array_header_1_0(head, d)
    except ValueError:  # a header too long for version 1.0
        head = io.BytesIO()
        np.lib.format.write_array_header_2_0(head, d)
    raw = _bytes_of(a)
    size = len(head.getvalue()) + raw.size
    digest = hashlib.sha256()
    with zf.open(_member_info(name, size), "w", force_zip64=size >= zipfile.ZIP64_LIMIT - 4096) as f:
        f.write(head.getvalue())
        for i in range(0, raw.size, _CHUNK):
            chunk = raw[i:i + _CHUNK]
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def _write_checkpoint(f, tree, optimizer_name):
    from fastopt._version import __version__
    arrays = []
    encoded = _encode(tree, arrays, "checkpoint", set())
    table = []
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for k, a in enumerate(arrays):
            member = f"arrays/{k:05d}.npy"
            digest = _write_array(zf, member, a)
            table.append({"member": member, "dtype": a.dtype.str, "shape": list(a.shape), "sha256": digest})
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "optimizer": optimizer_name,
                  "library": "fastopt", "library_version": __version__, "tree": encoded, "arrays": table}
        blob = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
        zf.writestr(_member_info(_HEADER, len(blob)), blob)
        zf.writestr(_member_info(_HEADER_SUM, 64), hashlib.sha256(blob).hexdigest().encode("ascii"))



def _read_array(zf, entry, where):
    member = entry["member"]
    dtype = np.dtype(entry["dtype"])
    shape = tuple(entry["shape"])
    if not _check_dtype(dtype) or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"{where}: bad dtype {entry['dtype']!r} or shape {entry['shape']!r}")
    info = zf.getinfo(member)
    nbytes = math.prod(shape) * dtype.itemsize
    end = info.header_offset + info.file_size
    if (info.compress_type != zipfile.ZIP_STORED or nbytes > info.file_size
            or end > os.fstat(zf.fp.fileno()).st_size):  # checked before allocating
        raise ValueError(f"{where}: member {member} does not hold {shape} x {dtype}")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            fshape, fortran, fdtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            fshape, fortran, fdtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{where}: .npy version {version} is not one this module writes")
        if fshape != shape or fdtype.str != dtype.str or fortran:
            raise ValueError(f"{where}: member {member} holds {fshape} x {fdtype}, the header says "
                             f"{shape} x {dtype}")
        out = np.empty(shape, dtype)
        raw = out.reshape(-1).view(np.uint8)
        digest = hashlib.sha256()
        for i in range(0, raw.size, _CHUNK):
            chunk = raw[i:i + _CHUNK]
            if f.readinto(chunk) != chunk.size:
                raise ValueError(f"{where}: member {member} is short")
            digest.update(chunk)
        if f.read(1):  # also makes zipfile check the member's CRC
            raise ValueError(f"{where}: member {member} has trailing bytes")
    if digest.hexdigest() != entry["sha256"]:
        raise ValueError(f"{where}: SHA-256 mismatch in {member} (the file is corrupt)")
    return out


def _no_constants(name):
    raise ValueError(f"non-standard JSON constant {name}")


def read(path):
    """Read and verify a checkpoint without applying it.

    Returns ``(header, tree)``: the header (format, version, optimizer, library_version) and the
    saved tree ``{"optimizer": state_dict, "params": ..., "scaler": ...}`` (absent keys were not
    saved). Raises ``CheckpointError`` for anything but a valid fastopt checkpoint.
    """
    name = os.fspath(path)

    def bad(problem):
        return CheckpointError(f"{name!r} is not a valid fastopt checkpoint: {problem}")

    try:
        zf = zipfile.ZipFile(name)
    except zipfile.BadZipFile as e:
        raise bad(f"not a zip archive, or truncated ({e})") from None
    except (EOFError, ValueError, struct.error, OverflowError, NotImplementedError) as e:
        raise bad(f"unreadable zip structure ({type(e).__name__}: {e})") from None
    with zf:
        try:
            names = zf.namelist()
            if _HEADER not in names or _HEADER_SUM not in names:
                raise bad(f"it has no {_HEADER} header (not a fastopt checkpoint)")
            if len(set(names)) != len(names):
                raise bad("duplicate zip members")
            blob = zf.read(_HEADER)
            if zf.read(_HEADER_SUM).decode("ascii", "replace") != hashlib.sha256(blob).hexdigest():
                raise bad("the header's SHA-256 does not match (the file is corrupt)")
            header = json.loads(blob.decode("utf-8"), parse_constant=_no_constants)
            if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
                raise bad(f"format is {header.get('format') if isinstance(header, dict) else None!r}, "
                          f"not {FORMAT_NAME!r}")
            version = header.get("version")
            if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
                raise bad(f"format version {version!r} is not one this fastopt reads (1 to {FORMAT_VERSION}); "
                          "it was written by another fastopt version")
            table = header["arrays"]
            if not isinstance(table, list) or not all(isinstance(e, dict) for e in table):
                raise bad("malformed array table")
            members = {e["member"] for e in table}
            if len(members) != len(table) or set(names) != members | {_HEADER, _HEADER_SUM}:
                raise bad("its members do not match the header's array table")
            arrays = [_read_array(zf, e, f"array {k}") for k, e in enumerate(table)]
            used = set()
            tree = _decode(header["tree"], arrays, used)
            if len(used) != len(arrays):
                raise bad("arrays not referenced by the tree")
            if not isinstance(tree, dict) or "optimizer" not in tree or set(tree) - {"optimizer", "params", "scaler"}:
                raise bad("malformed tree")
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, EOFError, KeyError, TypeError, ValueError, struct.error, OverflowError,
                NotImplementedError, UnicodeError, RecursionError) as e:
            raise bad(f"{type(e).__name__}: {e}") from None
    info = {k: header.get(k) for k in ("format", "version", "optimizer", "library_version")}
    return info, tree
