"""Backend choice, fallbacks, thread control and show_config."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastopt
from fastopt import _backends
from tests.conftest import require_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter with the repo importable; return stdout+stderr."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, **env}
    full_env.pop("FASTOPT_BACKEND", None) if "FASTOPT_BACKEND" not in env else None
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture
def restore_backend():
    saved = _backends._state["backend"]
    yield
    _backends._state["backend"] = saved


def test_default_is_numba_and_set_backend_switches(restore_backend):
    require_backend("cython")
    assert fastopt.set_backend("numba") == "numba"
    assert fastopt.get_backend() == "numba"
    fastopt.set_backend("cython")
    p = np.zeros(3)
    opt = fastopt.SGD(p, lr=1.0)
    opt.step(np.ones(3))
    assert opt._plan.backend.name == "cython"
    np.testing.assert_array_equal(p, -1.0)
    # an optimizer's own backend wins over the global choice
    opt = fastopt.SGD(p, lr=1.0, backend="python")
    opt.step(np.ones(3))
    assert opt._plan.backend.name == "python"


def test_unknown_backend_names_the_choices(restore_backend):
    with pytest.raises(ValueError, match="numba.*cython.*python"):
        fastopt.set_backend("fortran")
    with pytest.raises(ValueError, match="unknown backend"):
        fastopt.Adam(np.zeros(2), backend="fortran")


def test_environment_variable_chooses_backend():
    require_backend("cython")
    out = run_python("import fastopt; print('active', fastopt.get_backend())", FASTOPT_BACKEND="cython")
    assert "active cython" in out


def test_auto_falls_back_without_numba_with_a_warning():
    require_backend("cython")
    out = run_python("""
        import sys, warnings
        sys.modules["numba"] = None          # as if Numba were not installed
        import numpy as np, fastopt
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            print("active", fastopt.get_backend())
        print("warned", any("pip install numba" in str(x.message) for x in w))
        try:
            fastopt.set_backend("numba")
        except fastopt.BackendUnavailable as exc:
            print("error", exc)
        p = np.zeros(4, np.float32)
        fastopt.SGD(p, lr=0.5).step(np.ones(4, np.float32))
        print("stepped", p[0])
    """)
    assert "active cython" in out and "warned True" in out
    assert "error the numba backend needs Numba: pip install numba" in out
    assert "stepped -0.5" in out


def test_missing_cython_build_says_how_to_get_it():
    out = run_python("""
        import sys
        sys.modules["fastopt._cy.fastopt_threads"] = None   # as if the extensions were not built
        import fastopt
        try:
            fastopt.set_backend("cython")
        except fastopt.BackendUnavailable as exc:
            print("error", exc)
        print("auto", fastopt.set_backend("auto"))
    """)
    assert "error the cython backend is not built" in out and "pip install" in out
    assert "auto numba" in out


def test_numba_runs_without_cython_installed():
    """The kernel sources import cython for its decorators; without it a shim serves."""
    out = run_python("""
        import sys
        sys.modules["cython"] = None
        import numpy as np, fastopt
        fastopt.set_backend("numba")
        p = np.zeros(3)
        fastopt.SGD(p, lr=2.0).step(np.ones(3))
        print("p", p.tolist())
    """)
    assert "p [-2.0, -2.0, -2.0]" in out


def test_threads_can_be_set_and_read():
    saved = fastopt.get_num_threads()
    try:
        fastopt.set_num_threads(1)
        assert fastopt.get_num_threads() == 1
        assert _backends.chunks_for(10**7) == 1
        fastopt.set_num_threads(2)
        assert _backends.chunks_for(10**7) == 2
        assert _backends.chunks_for(1000) == 1  # serial below the threshold
    finally:
        fastopt.set_num_threads(saved)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive integer"):
            fastopt.set_num_threads(bad)


def test_show_config_names_versions_backends_and_cpu(capsys):
    fastopt.show_config()
    out = capsys.readouterr().out
    for word in ("fastopt", "numpy", "backend numba", "backend cython", "threads", "cpu"):
        assert word in out


@pytest.mark.parametrize("modname", sorted(set(_backends._KERNEL_MODULE.values())))
def test_every_kernel_has_a_serial_entry_without_openmp(modname):
    """Each kernel module renders ``<kernel>_serial`` next to each kernel: the same loops with
    no ``prange`` (an OpenMP region costs ~1.3 us a call, even with one thread)."""
    import ast

    from fastopt._kernels import _template
    tree = ast.parse(_template.render(modname))
    funcs = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    kernels = [k for k, m in _backends._KERNEL_MODULE.items() if m == modname]
    for k in kernels:
        serial = funcs[k + "_serial"]
        assert [a.arg for a in serial.args.args] == [a.arg for a in funcs[k].args.args]
        assert "prange" not in ast.unparse(serial)
        assert "prange" in ast.unparse(funcs[k])


def test_cython_runs_the_serial_entry_below_the_threshold():
    require_backend("cython")
    be = _backends.backend("cython")
    for name in ("adam", "lamb_norms", "norm_partials", "stream"):
        module = be._modules[_backends._KERNEL_MODULE[name]]
        # the serial entry's GIL-releasing wrapper (tests/test_gil.py)
        assert be.kernel(name, np.float32, False) is getattr(module, name + "_serial_nogil")["float"]
        assert be.kernel(name, np.float64, True) is not getattr(module, name + "_serial_nogil")["double"]


@pytest.mark.parametrize("modname, flag", [("sgd", "use_buf"), ("radam", "rectify"), ("moments", "belief")])
def test_unswitched_flags_are_tested_outside_the_element_loops(modname, flag):
    """``@elementwise(unswitch=...)``: the flag picks one of two copies of the loops per chunk, and
    no element loop reads it (Numba kept such a branch inside its vector loop: RAdam 2.3x, AdaBelief
    1.35x and SGD 1.4x Cython's serial time at 60K)."""
    import ast

    from fastopt._kernels import _template
    tree = ast.parse(_template.render(modname))
    for func in (f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name in (modname, modname + "_serial")):
        element_loops = [n for n in ast.walk(func) if isinstance(n, ast.For) and n.target.id == "i"]
        assert len(element_loops) == 4  # (accumulate/EMA loop, plain loop) x (flag on, flag off)
        for loop in element_loops:
            assert flag not in {n.id for n in ast.walk(loop) if isinstance(n, ast.Name)}
        tests = [n for n in ast.walk(func) if isinstance(n, ast.If) and isinstance(n.test, ast.Name)
                 and n.test.id == flag]
        assert len(tests) == 1


@pytest.mark.parametrize("env, cores, machine, expected", [
    ({}, 2, 2, 2),
    ({"LOCAL_WORLD_SIZE": "2"}, 2, 2, 1),            # torchrun --nproc-per-node=2 on 2 cores
    ({"LOCAL_WORLD_SIZE": "2"}, 16, 16, 8),
    ({"LOCAL_WORLD_SIZE": "4", "OMP_NUM_THREADS": "1"}, 16, 16, 4),  # torchrun's OMP=1 is the pools'
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 16, 16, 5),
    ({"LOCAL_WORLD_SIZE": "8"}, 4, 4, 1),
    ({"LOCAL_WORLD_SIZE": "2"}, 4, 16, 4),            # pinned by the launcher: the mask is this rank's
    ({"FASTOPT_NUM_THREADS": "3", "LOCAL_WORLD_SIZE": "2"}, 16, 16, 3),
])
def test_default_threads_share_the_cores_among_a_launchers_ranks(env, cores, machine, expected, monkeypatch):
    from fastopt._backends import base
    monkeypatch.setattr(base, "_cpu_count", lambda: cores)
    monkeypatch.setattr(os, "cpu_count", lambda: machine)
    assert _backends.default_threads(env) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_fastopt_num_threads_is_named(value):
    from fastopt import _backends
    with pytest.raises(ValueError, match="FASTOPT_NUM_THREADS"):
        _backends.default_threads({"FASTOPT_NUM_THREADS": value})
