"""Atomic, pickle-free checkpoints: ``fastopt.save`` and ``fastopt.load``.

One file holds the parameters (copies, when given), the optimizer's full ``state_dict()`` and,
optionally, a loss scaler's ``state_dict()``::

    fastopt.save("ckpt.fastopt", opt, params, scaler=scaler)     # atomic
    ...
    opt = fastopt.Adam(params)                                   # a fresh run
    fastopt.load("ckpt.fastopt", opt, params, scaler=scaler)     # in place; continues bit for bit

Format (version 1): an uncompressed zip archive (``np.load`` can list it) with

- ``arrays/NNNNN.npy``: every array of the tree, as plain ``.npy`` (no object dtypes);
- ``fastopt_checkpoint.json``: the header: ``format`` (``"fastopt-checkpoint"``), ``version``
  (an integer), ``optimizer`` (the class name), ``library_version``, ``tree`` (the saved tree,
  described generically, below) and ``arrays`` (each array's member, dtype, shape and the
  SHA-256 of its raw bytes);
- ``fastopt_checkpoint.sha256``: the SHA-256 of the header's bytes.

The tree is ``{"params": ..., "optimizer": state_dict, "scaler": ...}`` encoded without
knowledge of what it holds, so entries added to ``state_dict()`` later travel unchanged:
``None``, bools, ints, strs and finite floats are JSON values (a float's ``repr`` round-trips
exactly); every other node is a tagged JSON object: ``{"$": "dict", "items": [[key, value],
...]}`` (keys of any encodable type, int keys stay ints, order kept), ``{"$": "tuple", ...}``,
``{"$": "float", "bits": ...}`` for inf/nan (the IEEE bits), ``{"$": "scalar", "dtype": ...,
"bytes": ...}`` for NumPy scalars and ``{"$": "array", "index": k}``; lists are JSON lists.
Anything else (a Python object, a torch tensor) is refused when saving with a ``TypeError``
naming where it sits: nothing is ever pickled, so loading a file runs no code from it.

Loading checks everything before changing anything: the zip structure and CRCs, the header's
checksum, format name and version, every array's dtype, shape and SHA-256, the optimizer's class
name, the params' count, shapes and dtypes; then ``optimizer.load_state_dict`` (which checks
before it changes; a scaler, loaded just before it, is rolled back if it refuses), then the params
(``p[...] = saved``). A file that fails a
check raises ``CheckpointError`` (a ``ValueError``) naming the file and the problem.

Atomicity: ``save`` writes a temporary file in the target's directory, flushes and fsyncs it,
``os.replace``-s it onto the target and fsyncs the directory. A reader (or a crash, or a
``SIGKILL``) at any moment sees either the previous complete checkpoint or the new one, never
a partial file at ``path``. A save that raises removes its temporary file; a killed process
can leave one behind (``.<name>.<random>.tmp``), never the target half-written.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import secrets
import stat
import struct
import zipfile

import numpy as np

__all__ = ["save", "load", "read", "CheckpointError", "FORMAT_NAME", "FORMAT_VERSION"]

#: the header's ``format`` field
FORMAT_NAME = "fastopt-checkpoint"
#: the format version this module writes; it reads versions 1 .. FORMAT_VERSION
FORMAT_VERSION = 1

_HEADER = "fastopt_checkpoint.json"
_HEADER_SUM = "fastopt_checkpoint.sha256"
_CHUNK = 1 << 20                       # bytes per write/hash step
_DATE = (1980, 1, 1, 0, 0, 0)          # fixed member times: equal saves give equal files
_DTYPE_KINDS = "biufc"                 # bool, ints, floats, complex: no objects, no structs


class CheckpointError(ValueError):
    """A file is not a valid fastopt checkpoint, or does not fit the optimizer/params given."""


# ---------------------------------------------------------------------------------- the tree
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


# ---------------------------------------------------------------------------------- writing
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


def _fsync_dir(directory):
    if not hasattr(os, "O_DIRECTORY"):  # Windows: directories cannot be opened for fsync
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:  # file systems that cannot sync a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``."""
    target = os.path.realpath(path)  # through a symlink: replace the file it names
    directory, base = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for an ordinary new file
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # keep an old file's mode
            except OSError:
                pass
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _param_list(params, what):
    if isinstance(params, np.ndarray):
        return [params]
    if isinstance(params, (list, tuple)) and all(isinstance(p, np.ndarray) for p in params):
        return list(params)
    raise TypeError(f"{what} must be a NumPy array or a list of arrays, got {type(params).__name__}")


def save(path, optimizer, params=None, *, scaler=None):
    """Write a checkpoint of ``optimizer`` (and ``params``, ``scaler``) to ``path``, atomically.

    Stores copies of ``params`` (an array or a list of arrays, when given), the optimizer's
    ``state_dict()`` (every entry: arrays, step counts, hyperparameters, lr schedules) and
    ``scaler.state_dict()`` when a scaler is given, in one file (see the module docstring).

    Atomic: the file is written beside ``path``, fsynced, then renamed onto it, so ``path``
    always holds a complete checkpoint, the previous one until the new one is durable.

    Args:
        path: a str or ``os.PathLike``; its directory must exist.
        optimizer: a fastopt optimizer (anything with ``state_dict()``).
        params: the parameter arrays to store, or None.
        scaler: an object with ``state_dict()`` (a loss scaler), or None.

    Example:
        >>> fastopt.save("run/ckpt.fastopt", opt, [W, b])
        >>> fastopt.load("run/ckpt.fastopt", opt, [W, b])
    """
    tree = {"optimizer": optimizer.state_dict()}
    if params is not None:
        plist = _param_list(params, "params")
        tree["params"] = plist[0] if isinstance(params, np.ndarray) else plist
    if scaler is not None:
        tree["scaler"] = scaler.state_dict()
    _atomic_write(path, lambda f: _write_checkpoint(f, tree, type(optimizer).__name__))


# ---------------------------------------------------------------------------------- reading
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


def load(path, optimizer, params=None, *, scaler=None):
    """Restore a ``save``-d checkpoint into ``optimizer`` (and ``params``, ``scaler``), in place.

    The whole file is read and verified first (format, version, checksums, optimizer class,
    params count/shapes/dtypes); then ``optimizer.load_state_dict`` (which validates before it
    changes anything), then ``p[...] = saved`` for each param. A scaler is loaded just before
    the optimizer and given its previous state back if the optimizer rejects the saved one.
    Any failure raises ``CheckpointError`` naming the file and changes nothing.

    Args:
        path: a str or ``os.PathLike``.
        optimizer: the optimizer to restore, of the class that was saved.
        params: the arrays to restore (like those saved), or None to leave params alone.
        scaler: an object with ``load_state_dict()``, or None to ignore a saved scaler.

    Returns:
        ``{"format", "version", "optimizer", "library_version"}`` of the file.

    Example:
        >>> opt = fastopt.AdamW(params, lr=3e-4)
        >>> fastopt.load("run/ckpt.fastopt", opt, params)
    """
    name = os.fspath(path)
    info, tree = read(path)

    def bad(problem):
        return CheckpointError(f"checkpoint {name!r} {problem}")

    mine = type(optimizer).__name__
    if info["optimizer"] != mine:
        raise bad(f"holds a {info['optimizer']} optimizer, not a {mine}")
    targets = None
    if params is not None:
        targets = _param_list(params, "params")
        if "params" not in tree:
            raise bad("holds no params (it was saved with params=None)")
        saved = tree["params"]
        saved = [saved] if isinstance(saved, np.ndarray) else saved
        if not isinstance(saved, list) or not all(isinstance(s, np.ndarray) for s in saved):
            raise bad("has a malformed params entry")
        if len(saved) != len(targets):
            raise bad(f"holds {len(saved)} params, {len(targets)} were given")
        for i, (s, t) in enumerate(zip(saved, targets)):
            if s.shape != t.shape or s.dtype != t.dtype:
                raise bad(f"params[{i}] is {s.dtype} {s.shape}, the array given is {t.dtype} {t.shape}")
            if not t.flags.writeable:
                raise ValueError(f"params[{i}] is read-only: cannot restore checkpoint {name!r} into it")
    if scaler is not None and "scaler" not in tree:
        raise bad("holds no scaler state (it was saved without scaler=)")
    # verified: commit. The scaler first: if the optimizer then rejects its state (having
    # changed nothing), the scaler gets its own previous state back.
    if scaler is not None:
        scaler_before = scaler.state_dict()
        try:
            scaler.load_state_dict(tree["scaler"])
        except (ValueError, TypeError, KeyError) as e:
            raise bad(f"has a scaler state that {type(scaler).__name__}.load_state_dict rejected: {e}") from e
    try:
        optimizer.load_state_dict(tree["optimizer"])
    except BaseException as e:
        if scaler is not None:
            scaler.load_state_dict(scaler_before)
        if isinstance(e, (ValueError, TypeError, KeyError)):
            raise bad(f"was rejected by {mine}.load_state_dict: {e}") from e
        raise
    if targets is not None:
        for t, s in zip(targets, saved):
            t[...] = s
    return info
