"""``save`` and ``load``: a checkpoint of an optimizer (its ``state_dict``), its params and a
loss scaler, written atomically and restored only after every check passed."""
from __future__ import annotations

import os

import numpy as np

from fastopt.checkpoint.archive import CheckpointError, _write_checkpoint, read
from fastopt.checkpoint.atomic import _atomic_write


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
