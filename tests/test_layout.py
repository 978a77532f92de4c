"""The package's layout as a specification: layers import only downwards, modules stay small.

The layers, lowest first (DESIGN.md section 1; README "How it works"): the kernel sources; the
foundation (validation, the version, the compiled modules); the backends and their threads; the
framework-free building blocks (flat buffers, schedules, clipping, loss scaling, checkpoints, the
NumPy references); the optimizers' core; the rule classes; the package's public surface; the
framework adapters; the tools (benchmarks, demo, command line). A module may import its own
layer and the ones below it, never one above: the core never reaches for an adapter, a kernel
never for a backend.
"""
from __future__ import annotations

import ast
import fnmatch
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fastopt")

#: (layer, module patterns), lowest first; a module belongs to the first layer that matches it
LAYERS = [
    ("kernels", ["fastopt._kernels", "fastopt._kernels.*"]),
    ("foundation", ["fastopt._version", "fastopt._validate", "fastopt._cy", "fastopt._cy.*"]),
    ("backends", ["fastopt._threads", "fastopt._backends", "fastopt._backends.*"]),
    ("blocks", ["fastopt.flat", "fastopt.schedules", "fastopt.schedules.*", "fastopt.clip", "fastopt.scaler",
                "fastopt.checkpoint", "fastopt.checkpoint.*", "fastopt.reference", "fastopt.reference.*"]),
    ("core", ["fastopt.optimizers.core", "fastopt.optimizers.core.*"]),
    ("rules", ["fastopt.optimizers", "fastopt.optimizers.*"]),
    ("api", ["fastopt", "fastopt._config", "fastopt._threadpoolctl"]),
    ("adapters", ["fastopt.torch", "fastopt.torch.*", "fastopt.keras", "fastopt.keras.*"]),
    ("tools", ["fastopt.__main__", "fastopt._bench*", "fastopt._demo"]),
]

#: the most lines a hand-written module may have (generated code is rendered, not stored)
MAX_LINES = 400


def _modules():
    out = {}
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__",)]
        for f in filenames:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


MODULES = _modules()


def _layer(module):
    for k, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return k
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: place it")


def _imports(module, path):
    """The fastopt modules ``module`` imports (at any depth of its code: lazy imports count)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "fastopt")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "fastopt":
                continue
            for a in node.names:  # ``from fastopt import _backends`` imports the submodule
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found - {module}


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_downwards(module):
    mine = _layer(module)
    upward = sorted(m for m in _imports(module, MODULES[module]) if m in MODULES and _layer(m) > mine)
    assert not upward, (f"{module} (layer {LAYERS[mine][0]}) imports {upward} from a higher layer "
                        f"({', '.join(LAYERS[_layer(m)][0] for m in upward)})")


def test_imports_are_resolved():
    """The check above sees every fastopt import (a renamed module would slip through it)."""
    for module, path in MODULES.items():
        unknown = sorted(m for m in _imports(module, path) if m not in MODULES
                         and not m.startswith("fastopt._cy."))
        assert not unknown, f"{module} imports {unknown}, which are not modules of the package"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    with open(MODULES[module]) as f:
        n = sum(1 for _ in f)
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES}): split it by concern"
