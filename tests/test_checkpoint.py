"""fastopt.save / fastopt.load: bit-identical resume, exact tree round trips, atomic writes,
and corrupt or mismatched files rejected before anything changes."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import fastopt
from fastopt import checkpoint, schedules
from fastopt.checkpoint import CheckpointError, archive
from tests.conftest import make_params, mixed_grads, require_backend

SHAPES = [(3, 4), (5,), (1,), (2, 1, 3)]
BEFORE, AFTER = 5, 6
REPO = pathlib.Path(fastopt.__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _numba():
    require_backend("numba")


# ------------------------------------------------------------------------------ helpers
def same(a, b, where="root"):
    """``a`` and ``b`` are equal with identical types, dict key order, dtypes and bits."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b], f"{where}: keys"
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype.str == b.dtype.str and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{where}: values"
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def snapshot(opt, params):
    """Everything a load could change, as bytes and reprs."""
    return dict(params=[(p.dtype.str, p.shape, p.tobytes()) for p in params],
                state=[{k: (v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v
                        for k, v in s.items()} for s in opt.state],
                steps=list(opt._steps),
                groups=repr([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]),
                lr_objects=[id(g["lr"]) for g in opt.param_groups])


def grads_seq(seed, n, dtype):
    rng = np.random.default_rng(seed)
    return [mixed_grads(rng, SHAPES, dtype) for _ in range(n)]


# optimizer configurations: (name, group-0 hyperparameters, group-1 overrides); lr may be a
# zero-argument factory of a schedule (each optimizer gets its own schedule object)
CONFIGS = {
    "sgd-nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3), dict(lr=0.01)),
    "adam-amsgrad": ("Adam", dict(lr=0.01, amsgrad=True, betas=(0.8, 0.99)), dict(lr=0.003)),
    "adamw": ("AdamW", dict(lr=0.02, weight_decay=0.1), dict(weight_decay=0.0)),
    "rmsprop-centered-momentum": ("RMSprop", dict(lr=0.003, centered=True, momentum=0.5), dict(lr=0.001)),
    "adagrad": ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1), dict(lr=0.02)),
    "adam-exponential-decay": ("Adam", dict(lr=lambda: schedules.ExponentialDecay(0.01, 3, 0.5)),
                               dict(lr=lambda: schedules.ExponentialDecay(0.02, 2, 0.9, staircase=True))),
}


def build(cfg, params, defaults=False):
    """The optimizer of ``cfg`` over two groups (params[:2], params[2:]); with ``defaults`` only
    the structure is given, the hyperparameters must come from the checkpoint."""
    name, hyper, second = CONFIGS[cfg]
    live = {k: (v() if callable(v) else v) for k, v in hyper.items()}
    over = {k: (v() if callable(v) else v) for k, v in second.items()}
    if defaults:
        return getattr(fastopt, name)([{"params": params[:2]}, {"params": params[2:]}], backend="numba")
    return getattr(fastopt, name)([{"params": params[:2]}, {"params": params[2:], **over}],
                                  backend="numba", **live)


def trained(cfg="adam-amsgrad", dtype=np.float64, seed=0, steps=3):
    params = make_params(np.random.default_rng(seed), SHAPES, dtype)
    opt = build(cfg, params)
    for g in grads_seq(seed + 1, steps, dtype):
        opt.step(g)
    return opt, params


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_resume_is_bit_identical(cfg, dtype, tmp_path):
    params = make_params(np.random.default_rng(0), SHAPES, dtype)
    seq = grads_seq(1, BEFORE + AFTER, dtype)
    opt = build(cfg, params)
    for g in seq[:BEFORE]:
        opt.step(g)
    path = tmp_path / "run.ckpt"
    fastopt.save(path, opt, params)
    for g in seq[BEFORE:]:
        opt.step(g)

    fresh = [np.full(s, 7.0, dtype) for s in SHAPES]  # other values: they must be overwritten
    resumed = build(cfg, fresh, defaults=True)
    info = fastopt.load(str(path), resumed, fresh)
    assert info["version"] == checkpoint.FORMAT_VERSION and info["optimizer"] == type(opt).__name__
    for g in seq[BEFORE:]:
        resumed.step(g)
    for p, q in zip(params, fresh):
        assert p.dtype == q.dtype and np.array_equal(p, q)
    same(resumed.state_dict(), opt.state_dict())  # state arrays, step counts, hyperparameters
    if opt.counts_steps:
        assert resumed._steps == opt._steps
    if cfg == "adam-exponential-decay":
        assert isinstance(resumed.param_groups[1]["lr"], schedules.ExponentialDecay)


def test_params_single_array_and_no_params(tmp_path):
    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    opt = fastopt.Adam(w, lr=0.1)
    opt.step(np.ones_like(w))
    fastopt.save(tmp_path / "a.ckpt", opt, w)
    fastopt.save(tmp_path / "b.ckpt", opt)
    v = np.zeros_like(w)
    other = fastopt.Adam(v)
    fastopt.load(tmp_path / "a.ckpt", other, v)
    assert np.array_equal(v, w)
    v2 = np.zeros_like(w)
    other2 = fastopt.Adam(v2)
    fastopt.load(tmp_path / "b.ckpt", other2)  # optimizer only
    same(other2.state_dict(), opt.state_dict())
    assert not v2.any()
    with pytest.raises(CheckpointError, match="holds no params"):
        fastopt.load(tmp_path / "b.ckpt", other2, v2)


# ------------------------------------------------------------------------------ the tree
class FakeOptimizer:
    """Any object with state_dict/load_state_dict: the tree is carried generically."""

    def __init__(self, tree=None):
        self.tree, self.loaded = tree, None

    def state_dict(self):
        return self.tree

    def load_state_dict(self, sd):
        if not isinstance(sd, dict):
            raise ValueError("state_dict must be a dict")
        self.loaded = sd


class FakeScaler:
    def __init__(self, scale=65536.0, tracker=0):
        self.scale, self.tracker = scale, tracker

    def state_dict(self):
        return {"scale": self.scale, "growth_tracker": self.tracker}

    def load_state_dict(self, sd):
        if set(sd) != {"scale", "growth_tracker"}:
            raise ValueError(f"bad scaler state {sorted(sd)}")
        self.scale, self.tracker = sd["scale"], sd["growth_tracker"]


def odd_tree():
    f = np.arange(12, dtype=np.float64).reshape(3, 4)
    return {
        "state": {0: {"step": 3, "ema": np.arange(6, dtype=np.float32).reshape(2, 3)},
                  1: {"step": 0, "count": np.int64(-5)}},
        "param_groups": [{"lr": {"class_name": "ExponentialDecay", "config": {"decay_steps": 3}},
                          "betas": (0.9, 0.999), "nested": ((1, (2.5, None)), [], (), {}),
                          "params": [0, 1]}],
        "keys": {0: "int zero", "0": "str zero", -7: 1, 2 ** 70: "big", (1, "a"): "tuple key",
                 None: "none", True: "bool", 1.5: "float"},
        "floats": [0.1, -0.0, 1e-310, 1e308, float("inf"), float("-inf"), float("nan"), 1.0, 3],
        "bools": [True, False, np.bool_(True)],
        "np_scalars": [np.float32(1.5), np.float16(-2.25), np.int8(-3), np.uint64(2 ** 64 - 1),
                       np.float64("nan"), np.complex64(1 + 2j), np.float32("-inf")],
        "arrays": [np.array(2.5), np.array(7, np.int32), np.zeros((0, 3), np.float32),
                   np.array([1, -1], np.int8), np.array([2 ** 63], np.uint64), np.array([True, False]),
                   np.array([1 + 1j], np.complex128), np.array([1.0, np.nan, -np.inf], ">f8"),
                   np.asfortranarray(f), f[:, ::2], np.arange(5, dtype=np.float16)],
        "strings": ["", "ünïcode ✓", "$", '{"$": "array", "index": 0}'],
        "lookalike": {"$": "array", "index": 0, "items": []},  # user data shaped like a tag
        "none": None,
    }


def test_tree_round_trip_preserves_types_and_bits(tmp_path):
    tree = odd_tree()
    path = tmp_path / "tree.ckpt"
    fastopt.save(path, FakeOptimizer(tree), scaler=FakeScaler(1024.0, 7))
    target, scaler = FakeOptimizer(), FakeScaler()
    info = fastopt.load(path, target, scaler=scaler)
    assert info["optimizer"] == "FakeOptimizer"
    same(target.loaded, tree)
    assert (scaler.scale, scaler.tracker) == (1024.0, 7) and type(scaler.tracker) is int
    arr = target.loaded["arrays"][8]
    assert arr.flags.writeable and arr.flags.c_contiguous
    _, read_tree = checkpoint.read(path)
    same(read_tree["scaler"], {"scale": 1024.0, "growth_tracker": 7})


def test_same_state_saves_to_the_same_bytes(tmp_path):
    opt, params = trained()
    fastopt.save(tmp_path / "a", opt, params)
    fastopt.save(tmp_path / "b", opt, params)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


@pytest.mark.parametrize("bad", [object(), lambda: 0, np.array([object()]), {"k": {1, 2}}],
                         ids=["object", "function", "object-array", "set"])
def test_unsupported_values_raise_and_leave_no_file(bad, tmp_path):
    path = tmp_path / "x.ckpt"
    with pytest.raises(TypeError, match=r"cannot save checkpoint\['optimizer'\]\['state'\]"):
        fastopt.save(path, FakeOptimizer({"state": bad}))
    assert os.listdir(tmp_path) == []


def test_self_containing_tree_raises(tmp_path):
    tree = {"a": []}
    tree["a"].append(tree)
    with pytest.raises(TypeError, match="contains itself"):
        fastopt.save(tmp_path / "x", FakeOptimizer(tree))


# ------------------------------------------------------------------------------ atomicity
_CHILD = r"""
import sys, numpy as np, fastopt
path = sys.argv[1]
big = np.empty(20_000_000, np.float32)
marker = np.zeros(1)
opt = fastopt.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
k = 0
while True:
    k += 1
    big.fill(k)
    marker[0] = k
    fastopt.save(path, opt, [big, marker])
    print(k, flush=True)
"""


def test_sigkill_during_save_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "big.ckpt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    rng = random.Random()
    big = np.empty(20_000_000, np.float32)
    marker = np.zeros(1)
    mid_write = 0
    for trial in range(3):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                                 env=env, cwd=str(tmp_path))
        try:
            first = child.stdout.readline()
            assert first.strip().isdigit(), "the child did not complete a save"
            t0 = time.perf_counter()
            child.stdout.readline()  # a second save: its duration sets the range of kill moments
            period = time.perf_counter() - t0
            delay = rng.uniform(0.0, 1.5 * period)
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            done = [int(x) for x in child.stdout.read().split()]
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        last = done[-1] if done else 2
        opt = fastopt.SGD([np.zeros(3)], lr=0.1, momentum=0.9)
        fastopt.load(path, opt, [big, marker])
        k = marker[0]
        assert k in (last, last + 1), (trial, delay, k, last)
        # min/max: no 20 MB temporary (freeing one raises glibc's mmap threshold, which would
        # hide the page faults that test_no_allocation.py's control measures)
        assert big.min() == k == big.max(), (trial, delay)
        leftovers = [n for n in os.listdir(tmp_path) if n != path.name]
        assert all(n.startswith(".big.ckpt.") and n.endswith(".tmp") for n in leftovers), leftovers
        for n in leftovers:  # a killed save's temporary file: the target is never it
            os.unlink(tmp_path / n)
        mid_write += bool(leftovers)
    print(f"{mid_write} of 3 kills landed inside a save")


@pytest.mark.parametrize("where", ["mid-array", "fsync", "replace", "interrupt"])
def test_failed_save_leaves_old_file_and_no_temp(where, tmp_path, monkeypatch):
    opt, params = trained()
    path = tmp_path / "run.ckpt"
    fastopt.save(path, opt, params)
    old = path.read_bytes()
    opt.step(grads_seq(9, 1, np.float64)[0])  # the next save would differ
    real_write = archive._write_array
    calls = []

    def boom(*a, **k):
        raise (KeyboardInterrupt if where == "interrupt" else OSError)("injected")

    if where in ("mid-array", "interrupt"):
        def write_array(zf, name, a):
            calls.append(name)
            if len(calls) == 3:  # some members written, then fail inside a member
                with zf.open(archive._member_info(name, 100), "w") as f:
                    f.write(b"partial")
                    boom()
            return real_write(zf, name, a)
        monkeypatch.setattr(archive, "_write_array", write_array)
    else:
        monkeypatch.setattr(os, where, boom)
    with pytest.raises((OSError, KeyboardInterrupt), match="injected"):
        fastopt.save(path, opt, params)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["run.ckpt"]


def test_save_writes_through_pathlike_and_keeps_mode(tmp_path):
    opt, params = trained()
    path = tmp_path / "m.ckpt"
    fastopt.save(path, opt, params)
    os.chmod(path, 0o600)
    fastopt.save(os.fspath(path), opt, params)
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert os.listdir(tmp_path) == ["m.ckpt"]


# ------------------------------------------------------------------------------ bad files
HEADER, HEADER_SUM = "fastopt_checkpoint.json", "fastopt_checkpoint.sha256"


def rewrite(src, dst, header_edit=None, member_edit=None):
    """A well-formed zip copy of ``src`` (valid CRCs) with edits; the header checksum is redone."""
    with zipfile.ZipFile(src) as zin:
        header = json.loads(zin.read(HEADER))
        if header_edit:
            header_edit(header)
        blob = json.dumps(header).encode()
        with zipfile.ZipFile(dst, "w") as zout:
            for name in zin.namelist():
                if name == HEADER:
                    data = blob
                elif name == HEADER_SUM:
                    data = hashlib.sha256(blob).hexdigest().encode()
                else:
                    data = zin.read(name)
                    if member_edit:
                        data = member_edit(name, data)
                zout.writestr(name, data)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint of a trained Adam (two groups), and a target that differs in everything."""
    opt, params = trained("adam-amsgrad", seed=0, steps=4)
    path = tmp_path / "good.ckpt"
    fastopt.save(path, opt, params, scaler=FakeScaler(512.0, 3))
    target, tparams = trained("adam-amsgrad", seed=10, steps=2)
    target.param_groups[0]["lr"] = 0.123
    return path, target, tparams


def assert_rejected(path, target, tparams, match, scaler=None, exc=CheckpointError):
    before = snapshot(target, tparams)
    sbefore = scaler.state_dict() if scaler is not None else None
    with pytest.raises(exc, match=match) as info:
        fastopt.load(path, target, tparams, scaler=scaler)
    assert snapshot(target, tparams) == before
    if scaler is not None:
        assert scaler.state_dict() == sbefore
    return info.value


def test_good_file_loads(saved):
    path, target, tparams = saved
    scaler = FakeScaler()
    fastopt.load(path, target, tparams, scaler=scaler)
    assert target.param_groups[0]["lr"] == 0.01 and scaler.scale == 512.0


def test_truncated_files_raise(saved, tmp_path):
    path, target, tparams = saved
    data = path.read_bytes()
    for cut in [0, 1, 4, 30, 200, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 22, len(data) - 1]:
        bad = tmp_path / f"cut{cut}.ckpt"
        bad.write_bytes(data[:cut])
        e = assert_rejected(bad, target, tparams, r"is not a valid fastopt checkpoint")
        assert str(bad) in str(e)


def test_flipped_bytes_raise(saved, tmp_path):
    path, target, tparams = saved
    data = path.read_bytes()
    state = np.ascontiguousarray(trained("adam-amsgrad", seed=0, steps=4)[0].state[0]["exp_avg_sq"]).tobytes()
    at = data.index(state)  # inside an array payload
    header_at = data.index(b'"format"')  # inside the JSON header
    for k, pos in enumerate([at + len(state) // 2, at, header_at + 3, header_at + 40, len(data) - 30]):
        bad = tmp_path / f"flip{k}.ckpt"
        bad.write_bytes(data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1:])
        assert_rejected(bad, target, tparams, r"is not a valid fastopt checkpoint")


def test_payload_changed_with_valid_zip_crc_fails_its_sha256(saved, tmp_path):
    path, target, tparams = saved
    bad = tmp_path / "tampered.ckpt"

    def edit(name, data):
        if name == "arrays/00003.npy":
            data = data[:-1] + bytes([data[-1] ^ 1])
        return data

    rewrite(path, bad, member_edit=edit)
    assert_rejected(bad, target, tparams, r"SHA-256 mismatch in arrays/00003.npy")
    rewrite(path, tmp_path / "copy.ckpt")  # the unedited copy is fine
    fastopt.load(tmp_path / "copy.ckpt", target, tparams)


def test_header_edited_without_its_checksum_fails(saved, tmp_path):
    path, target, tparams = saved
    bad = tmp_path / "header.ckpt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data.replace(b'"version":1', b'"version":1 ') if name == HEADER else data)
    assert_rejected(bad, target, tparams, r"header's SHA-256 does not match")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"PK\x03\x04" + bytes(200), "npz"],
                         ids=["empty", "garbage", "fake-zip", "npz"])
def test_non_checkpoints_raise(content, saved, tmp_path):
    path, target, tparams = saved
    bad = tmp_path / "not.ckpt"
    if content == "npz":
        with open(bad, "wb") as f:
            np.savez(f, a=np.zeros(3))
    else:
        bad.write_bytes(content)
    assert_rejected(bad, target, tparams, r"not.ckpt.* is not a valid fastopt checkpoint")


@pytest.mark.parametrize("edit,match", [
    (lambda h: h.update(version=2), r"format version 2 is not one this fastopt reads"),
    (lambda h: h.update(version="1"), r"format version '1'"),
    (lambda h: h.update(version=0), r"format version 0"),
    (lambda h: h.pop("version"), r"format version None"),
    (lambda h: h.update(format="other-format"), r"format is 'other-format'"),
    (lambda h: h["arrays"][0].update(shape=[99]), r"array 0"),
    (lambda h: h["arrays"][0].update(dtype="|O"), r"array 0: bad dtype"),
    (lambda h: h.update(tree={"$": "pickle", "data": ""}), r"unknown node tag 'pickle'"),
    (lambda h: h["arrays"].pop(), r"members do not match"),
], ids=["v2", "v-str", "v0", "no-version", "format", "shape", "object-dtype", "tag", "table"])
def test_wrong_headers_raise(edit, match, saved, tmp_path):
    path, target, tparams = saved
    bad = tmp_path / "edited.ckpt"
    rewrite(path, bad, header_edit=edit)
    assert_rejected(bad, target, tparams, match)


@pytest.mark.parametrize("src", ["sgd-nesterov", "adamw", "rmsprop-centered-momentum"])
def test_another_optimizers_checkpoint_raises(src, saved, tmp_path):
    _, target, tparams = saved
    opt, params = trained(src)
    path = tmp_path / "other.ckpt"
    fastopt.save(path, opt, params)
    e = assert_rejected(path, target, tparams, rf"holds a {type(opt).__name__} optimizer, not a Adam")
    assert str(path) in str(e)


def test_mismatched_params_raise(saved):
    path, target, tparams = saved
    assert_rejected(path, target, tparams[:3], r"holds 4 params, 3 were given")
    other = [np.zeros((4, 3)) if i == 0 else p for i, p in enumerate(tparams)]
    assert_rejected(path, target, other, r"params\[0\] is float64 \(3, 4\), the array given is float64 \(4, 3\)")
    other = [p.astype(np.float32) if i == 1 else p for i, p in enumerate(tparams)]
    assert_rejected(path, target, other, r"params\[1\] is float64 \(5,\), the array given is float32")


def test_state_rejected_by_the_optimizer_raises_and_rolls_back_the_scaler(saved):
    path, _, _ = saved
    params = make_params(np.random.default_rng(3), SHAPES, np.float64)
    one_group = fastopt.Adam(params, amsgrad=True)  # same class and params, one group only
    one_group.step(grads_seq(4, 1, np.float64)[0])
    scaler = FakeScaler(2.0, 1)
    assert_rejected(path, one_group, params, scaler=scaler,
                    match=r"rejected by Adam.load_state_dict: state_dict has 2 parameter groups, the optimizer has 1")


def test_scaler_missing_or_rejected(saved, tmp_path):
    path, target, tparams = saved
    opt, params = trained()
    plain = tmp_path / "plain.ckpt"
    fastopt.save(plain, opt, params)
    assert_rejected(plain, target, tparams, r"holds no scaler state", scaler=FakeScaler())

    class Picky(FakeScaler):
        def load_state_dict(self, sd):
            raise ValueError("wrong scaler")
    assert_rejected(path, target, tparams, r"scaler state that Picky.load_state_dict rejected", scaler=Picky())


def test_missing_file_raises_oserror(tmp_path):
    opt, params = trained()
    with pytest.raises(FileNotFoundError):
        fastopt.load(tmp_path / "nope.ckpt", opt, params)
