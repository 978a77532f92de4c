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

from fastopt.checkpoint.archive import FORMAT_NAME, FORMAT_VERSION, CheckpointError, read
from fastopt.checkpoint.save_load import load, save

__all__ = ["save", "load", "read", "CheckpointError", "FORMAT_NAME", "FORMAT_VERSION"]
