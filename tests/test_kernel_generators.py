"""The kernels are generated: each rule module holds its math, the generators write the loops.

``_template`` expands an ``@elementwise`` rule, ``_per_array_template`` the ``@reduction`` and
``@update`` passes of a per-array rule (Lamb, LARS, Adafactor). A rule module writes no loop of its
own but Adafactor's finishing sum of each matrix's R (its ``with matrix_end:`` section).
"""
import ast
import importlib.util
import os
import re

import pytest

from fastopt._backends import base
from fastopt._kernels import MODULES, PER_ARRAY, _per_array_template, _template

#: kernel modules that are not update rules, written by hand: the gradient norms and clipping, the
#: STREAM kernels of the memory ceiling, the accumulation of micro-batch gradients
HAND_WRITTEN = ("reduce", "stream", "accumulate", "convert")
RULES = [m for m in MODULES if m not in HAND_WRITTEN]


def _tree(modname):
    with open(os.path.join(_template.KERNEL_DIR, modname + ".py")) as f:
        return ast.parse(f.read())


@pytest.mark.parametrize("modname", RULES)
def test_every_rule_module_is_generated(modname):
    passes = _per_array_template.rules(_tree(modname))
    assert _template.is_elementwise(modname) != bool(passes)
    assert bool(passes) == (modname in PER_ARRAY)


@pytest.mark.parametrize("modname", RULES)
def test_rule_modules_write_no_loops_of_their_own(modname):
    """No prange, no kernel entry, and no loop but in a ``with matrix_end:`` section (a matrix's
    finishing work, documented in the generator)."""
    tree = _tree(modname)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "prange" not in names
    assert not [f for f in tree.body if isinstance(f, ast.FunctionDef)
                and any(ast.unparse(d) == "cython.ccall" for d in f.decorator_list)]
    finishing = {id(n) for w in ast.walk(tree) if isinstance(w, ast.With)
                 and ast.unparse(w.items[0].context_expr) == "matrix_end" for n in ast.walk(w)}
    loops = [n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While)) and id(n) not in finishing]
    assert loops == []
    assert len([n for n in ast.walk(tree) if isinstance(n, ast.For)]) == (1 if modname == "adafactor" else 0)


def test_the_kernel_table_names_every_generated_pass():
    table = {k for k, m in base._KERNEL_MODULE.items() if m in PER_ARRAY}
    assert table == {node.name for m in PER_ARRAY for node, _, _ in _per_array_template.rules(_tree(m))}


@pytest.mark.parametrize("modname", PER_ARRAY)
def test_plain_loops_carry_no_option(modname):
    """Each pass's plain loop (the ``else`` of its option test) reads neither the accumulator nor
    the EMA, and the accumulation test stays outside the element loops."""
    tree = ast.parse(_template.render(modname))
    kernels = [f for f in tree.body if isinstance(f, ast.FunctionDef)
               and any(ast.unparse(d) == "cython.ccall" for d in f.decorator_list)]
    assert len(kernels) == 2 * len(_per_array_template.rules(_tree(modname)))  # with the serial entries
    for func in kernels:
        tests = [n for n in ast.walk(func) if isinstance(n, ast.If)
                 and ast.unparse(n.test) in ("accumulate", "from_acc or use_ema", "use_ema")]
        for test in (t for t in tests if t.orelse):
            plain = {n.id for n in ast.walk(ast.Module(test.orelse, [])) if isinstance(n, ast.Name)}
            assert not plain & {"acc", "acc_s", "ema", "accumulate", "from_acc", "use_ema"}
        for loop in (n for n in ast.walk(func) if isinstance(n, ast.For) and ast.unparse(n.target) in ("i", "j")):
            assert "accumulate" not in {n.id for n in ast.walk(loop) if isinstance(n, ast.Name)}


def test_setup_renders_the_same_text_without_the_package(tmp_path):
    """setup.py loads _template from its file (no package, numpy may be absent): the generator it
    loads next to it writes what the package's renders."""
    spec = importlib.util.spec_from_file_location("_fastopt_build__template",
                                                  os.path.join(_template.KERNEL_DIR, "_template.py"))
    standalone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone)
    for path, name in zip(standalone.write_sources(PER_ARRAY, str(tmp_path)), PER_ARRAY):
        with open(path) as f:
            text = f.read()
        assert text.startswith(_template.render(name, chunk_function=True))
        assert f"def {_per_array_template.rules(_tree(name))[0][0].name}_serial_nogil(" in text


def _render(source):
    source = "import cython\n\n" + source
    return _per_array_template.render("example", source, ast.parse(source))


def test_a_reduction_adds_to_its_lanes():
    text = _render('@reduction(sums=("s",), grad="keep")\ndef example(w: cython.floating):\n'
                   '    s += w * gi * pi\n')
    assert "work[lane_s + j] += w * gi * pi" in text
    assert re.search(r"acc\[i\] = gi.*\n.*pi = p\[i\]\n.*gi = scaled_grad\(gi, grad_scale, clip\)", text)


@pytest.mark.parametrize("source, message", [
    ('@reduction(sums=("s",))\ndef example(w: cython.floating):\n    t = w * gi\n', "adds to sum 's'"),
    ('@reduction(sums=("s",))\ndef example(w: cython.floating):\n    s += w * gi\n    w = s\n', "adds to sum 's'"),
    ('@update()\ndef example(n: cython.floating):\n    p[i] = n * gi\n', "names the generated kernel has"),
    ('@update()\ndef example(w: cython.floating):\n    lo: cython.floating\n    p[i] = w * gi\n',
     "names the generated kernel has"),
    ('@update(layout="rows")\ndef example(w: cython.floating):\n    with row_end:\n        w = 1\n    p[i] = w\n',
     "not a rows update's"),
    ('@reduction(sums=("s",), grad="drop")\ndef example(w: cython.floating):\n    s += w\n', "grad is"),
    ('@reduction(sums=("s",), width=3)\ndef example(w: cython.floating):\n    s += w\n', "takes no 'width'"),
])
def test_a_malformed_pass_is_refused(source, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _render(source)
