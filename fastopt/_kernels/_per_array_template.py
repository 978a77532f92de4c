"""Expands the passes of a per-array rule (Lamb, LARS, Adafactor) into kernels: the plumbing of
their reductions and updates, written once, as ``_template`` writes an elementwise rule's.

A per-array rule needs statistics of each whole parameter array, so it runs in passes: reductions,
whose float64 sums go back to Python (which computes the per-array scalars from them in double),
then an update. A rule module holds one function per pass, decorated ``@reduction(...)`` or
``@update(...)``: its arguments are the pass's scalars, its ``name: type`` lines declare locals,
its body is the math of one element. :func:`render` (called by ``_template.render``) turns the
module into the Cython pure-mode source of its kernels: the text Numba and Python execute and
setup.py compiles (``_template.write_sources``, which adds the serial and GIL-releasing entries).

The body sees ``i`` (the element), ``gi`` (its gradient, accumulated, scaled and clipped), ``pi``
(``p[i]``) and the state arrays. ``pi = p[i]`` and the gradient's scaling come right before the
first statement of the body that reads them (the compilers keep the order they are given: LARS's
reduction ran 10% slower with the scaling first); a body that reads ``p[i]`` itself loads it where
it reads it. A reduction adds to its sums by name: ``r_sq += x`` becomes ``work[lane_r_sq + j] +=
x``, the element's float64 lane; an update writes ``p[i]``.

``grad`` (the gradient's prologue; ``scaled_grad`` clamps ``g * grad_scale`` to ``[-clip, clip]``)::

    reduction "consume"  accumulate: gi = scaled(g[i] * acc_s + acc[i]); acc[i] = 0 (first)
              "keep"     accumulate: gi = g[i] * acc_s + acc[i]; acc[i] = gi (the window's sum stays
                         for the later passes); gi = scaled(gi)
              "read"     no accumulation: the pass reads the array it is handed (the caller's
                         ``acc`` when a window's sum is there); no acc, acc_s, accumulate arguments
    update    True       from_acc: gi = acc[i]; acc[i] = 0 (the sum a "keep" pass left), else g[i]
              False      no gradient, no acc, from_acc, grad_scale, clip arguments

Each kernel runs a loop with the option (``accumulate``; ``from_acc or use_ema``, the update
adding the weight EMA ``ema[i] = ema_m * ema[i] + ema_c * p[i]``) and the plain loop on its own,
so the compilers tune it as if the options did not exist; each thread flushes denormals
(``ftz``). Arguments: ``p`` (read-only in a reduction; none with ``param=False``), ``g``, the
``states`` (written), the ``reads`` (read-only states), the scalars, then the layout's tail.

``layout="vector"``: reductions cut the array in chunks of a fixed ``chunk`` elements (whatever
the threads), element ``lo + k * width + j`` of a chunk adding to lane ``j`` of each sum (the loop
vectorizes without reassociating). ``work``: per chunk ``len(sums) * width`` lanes (sum s at
``s * width``), then the chunk partials (sum s of chunk c at ``parts + s * nparts + c``), then one
total per sum, last; lanes, partials and totals added in order (``fixed_sum``). Tail:
``grad_scale, clip, work, chunk, width, ftz``. Updates run ``nchunks`` chunks (tail ``nchunks, ftz``).

``layout="rows"``: ``nmat`` matrices of ``nrows`` x ``ncols`` (tail ``nmat, nrows, ncols[, nblk,
width], ftz``). A reduction runs ``nblk`` blocks of rows per matrix, each row in strips of
``width`` columns; the body also sees ``m`` (the matrix), ``q`` (the row, over all matrices) and
``cj`` (the column, over all matrices: ``col[cj]``). Three kinds of sums: ``sums`` (per block,
as the vector layout's chunks), ``row_sums`` (per row, in ``min(width, ncols)`` lanes, read by
``with row_end:``) and ``column_sums`` (one, per block and column, added over the blocks in order,
read by ``with column_end:``). ``work``: the column partials (``ncols`` per block), then per block
``lane_groups * width`` lanes (the row sums', then the block sums'; passes that share one ``work``
name the same ``lane_groups``), the block partials (sum s of block t at ``parts + s * items + t``)
and one total per block sum, last. An update runs one row per iteration. Sections of the body
(``with <name>:``), statements outside the element loops:

- ``row_start``: per row, before its elements;
- ``row_end`` (reductions): per row, after its elements (a row sum's name holds the row's total);
- ``column_end`` (reductions): after the blocks, per column ``cj`` (a column sum's name holds its
  total over the blocks);
- ``matrix_end`` (reductions): last, per matrix ``m``: a matrix's finishing work, with its own
  loops where it needs them (they are not element loops).
"""
from __future__ import annotations

import ast
import inspect
import re

if __package__:  # else setup.py runs _template without the package: _template._sibling set it here
    from fastopt._kernels import _template

#: the imports of a rendered per-array module: the elementwise kernels', and the reductions' helpers
_IMPORTS = _template._IMPORTS + '''\
if cython.compiled:
    from cython.cimports.fastopt._kernels._common import fixed_sum, sq
else:
    from fastopt._kernels._common import fixed_sum, sq
'''

_SSIZE, _FLOAT, _ARRAY = "cython.Py_ssize_t", "cython.floating", "cython.floating[::1]"
_CONST = "cython.const[cython.floating][::1]"

#: the gradient's prologue per ``grad`` (``None``: the plain loop's, ``False``: none): what comes first
#: in the loop, and the scaling, which comes right before the body's first statement that reads ``gi``
_GRAD = {
    None: ("", "gi = scaled_grad(g[i], grad_scale, clip)"),
    False: ("", ""),
    "consume": ("gi = scaled_grad(g[i] * acc_s + acc[i], grad_scale, clip)\nacc[i] = 0", ""),
    "keep": ("gi = g[i] * acc_s + acc[i]\nacc[i] = gi  # the window's sum stays for the later passes",
             "gi = scaled_grad(gi, grad_scale, clip)"),
    True: ("if from_acc:\n    gi = acc[i]\n    acc[i] = 0\nelse:\n    gi = g[i]",
           "gi = scaled_grad(gi, grad_scale, clip)"),
}
_EMA = "if use_ema:\n    ema[i] = ema_m * ema[i] + ema_c * p[i]"
_PLAIN = "else:  # the plain loop on its own (as _template's): the compilers tune it without the options\n"

#: the element loop of each (layout, kind): its header, then the index lines
_ELEMENTS = {("vector", "reduction"): ("for j in range(uidx(0), uidx(min(width, hi - lo - k * width))):",
                                       "i = base + j"),
             ("rows", "reduction"): ("for j in range(uidx(0), uidx(min(width, ncols - k * width))):", "i = base + j"),
             ("vector", "update"): ("for i in range(uidx(lo), uidx(hi)):", ""),
             ("rows", "update"): ("for j in range(uidx(0), uidx(ncols)):", "i = base + j")}
#: the locals each (layout, kind) sets before its loops, besides those ``_Pass._locals`` declares
_PREAMBLE = {("vector", "reduction"): ("n", "nparts", "parts"), ("vector", "update"): ("n", "chunk"),
             ("rows", "reduction"): ("items", "rb", "lanes", "parts", "wr"), ("rows", "update"): ()}


class _Section:
    """A section of a rule's body, opened ``with <name>:`` (read by :func:`render`, never run)."""

    def __init__(self, name, doc):
        self.__name__, self.__doc__ = name, doc

    def __repr__(self):
        return f"<section {self.__name__}>"


row_start = _Section("row_start", "Rows layout: per row, before its elements.")
row_end = _Section("row_end", "Rows layout, reductions: per row, after its elements (row sums hold its totals).")
column_end = _Section("column_end", "Rows layout, reductions: per column cj (column sums hold its totals).")
matrix_end = _Section("matrix_end", "Rows layout, reductions: last, per matrix m.")
_SECTIONS = ("row_start", "row_end", "column_end", "matrix_end")


def reduction(states=(), reads=(), sums=(), grad="consume", layout="vector", param=True, row_sums=(),
              column_sums=(), lane_groups=None):
    """Marks a reduction pass (read by :func:`render`; importing a rule module runs nothing):
    ``sums`` name its float64 sums (``row_sums``, ``column_sums``: the rows layout's), ``grad`` its
    gradient prologue, ``param`` whether it reads ``p``; see the module docstring."""
    return _mark


def update(states=(), reads=(), grad=True, layout="vector"):
    """Marks an update pass (read by :func:`render`), which writes ``p[i]``; see the module docstring."""
    return _mark


def _mark(func):
    return func


_KINDS = {"reduction": reduction, "update": update}


def rules(tree):
    """The passes of a parsed rule module: (function node, kind, options) in module order."""
    found = []
    for node in tree.body:
        for dec in getattr(node, "decorator_list", ()):
            kind = getattr(getattr(dec, "func", None), "id", None)
            if isinstance(dec, ast.Call) and kind in _KINDS:
                opts = {k: v.default for k, v in inspect.signature(_KINDS[kind]).parameters.items()}
                for kw in dec.keywords:
                    if kw.arg not in opts:
                        raise TypeError(f"{node.name}: @{kind} takes no {kw.arg!r}")
                    opts[kw.arg] = ast.literal_eval(kw.value)
                found.append((node, kind, opts))
    return found


def render(modname, text, tree):
    """The Cython pure-mode source of rule module ``modname`` (its ``text``, parsed as ``tree``):
    the module's helpers as written and each pass expanded into its kernel, in module order."""
    passes = {node: (kind, opts) for node, kind, opts in rules(tree)}
    out = [_template.module_head(modname, tree, _IMPORTS)]
    for node in tree.body:
        if node in passes:
            out.append("\n" + _kernel(text, node, *passes[node]))
        elif not _template.is_import_or_doc(node):
            out.append(_template.node_source(text, node) + "\n")
    return "\n".join(out)


def _kernel(text, node, kind, opts):
    """The kernel of one pass: its function node parsed into declarations, body and sections."""
    lines = text.splitlines()
    decls, body, sections = [], [], {}
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            decls.append(ast.get_source_segment(text, stmt))
        elif isinstance(stmt, ast.With) and getattr(stmt.items[0].context_expr, "id", None) in _SECTIONS:
            head = lines[stmt.lineno - 1]
            comment = ["#" + head.split("#", 1)[1]] if "#" in head else []  # the section's comment, kept
            sections[stmt.items[0].context_expr.id] = "\n".join(
                comment + [ln for s in stmt.body for ln in _template.statement_lines(lines, s, 0)])
        elif not _template.is_import_or_doc(stmt):
            body.append("\n".join(_template.statement_lines(lines, stmt, 0)))
    scalars = [f"{a.arg}: {ast.unparse(a.annotation)}" for a in node.args.args]
    return _Pass(node.name, kind, opts, scalars, decls, body, sections).text(ast.get_docstring(node))


class _Pass:
    """One pass's kernel: its arguments, locals and loops."""

    def __init__(self, name, kind, opts, scalars, decls, body, sections):
        self.name, self.kind, self.opts, self.layout = name, kind, opts, opts["layout"]
        self.scalars, self.decls, self.sections = scalars, decls, sections
        if (self.layout, kind) not in _ELEMENTS:
            raise ValueError(f"{name}: unknown layout {self.layout!r}")
        allowed = set(_SECTIONS if kind == "reduction" else ("row_start",)) if self.layout == "rows" else set()
        if set(sections) - allowed:
            raise ValueError(f"{name}: sections {sorted(set(sections) - allowed)} are not a {self.layout} {kind}'s")
        #: whether a name is read in the body (or in the sections named)
        self.uses = lambda word, *where: any(re.search(rf"\b{word}\b", t)
                                             for t in [*body, *map(sections.get, where)] if t)
        self.body = self._summed(body) if kind == "reduction" else body
        if kind == "reduction" and opts["grad"] not in ("consume", "keep", "read"):
            raise ValueError(f"{name}: grad is 'consume', 'keep' or 'read', got {opts['grad']!r}")

    # -- the sums ------------------------------------------------------------------------------

    def _summed(self, body):
        """The body's statements with each ``<sum> += x`` written as the add to its lane (a column
        sum's: to its column partial)."""
        o = self.opts
        if len(o["column_sums"]) > 1 or (self.layout == "vector" and (o["row_sums"] or o["column_sums"])):
            raise ValueError(f"{self.name}: row and column sums are the rows layout's, one column sum at most")
        for sums, section in (("row_sums", "row_end"), ("column_sums", "column_end")):
            if o[sums] and section not in self.sections:
                raise ValueError(f"{self.name}: {sums} are read in a `with {section}:` section")
        for s in (*o["row_sums"], *o["sums"], *o["column_sums"]):
            target = "cw + j" if s in o["column_sums"] else f"lane_{s} + j"
            added = [re.subn(rf"^(\s*){s} \+= ", rf"\1work[{target}] += ", stmt, flags=re.M) for stmt in body]
            body = [stmt for stmt, _ in added]
            if not any(count for _, count in added) or any(re.search(rf"\b{s}\b", stmt) for stmt in body):
                raise ValueError(f"{self.name}: the body adds to sum {s!r} (`{s} += x`) and does not read it")
        return body

    def _lanes(self, start):
        """The lane bases of the sums (the row sums first) from ``start``, ``width`` lanes each."""
        names = [f"lane_{s}" for s in (*self.opts["row_sums"], *self.opts["sums"])]
        return [f"{names[0]} = uidx({start})"] + [f"{v} = {names[0]} + uidx({_times(k, 'width')})"
                                                  for k, v in enumerate(names[1:], 1)]

    def _partials(self, item, count):
        """Each sum's partial of work item ``item`` (of ``count``), from its lanes."""
        return [f"work[{_plus('parts', _times(k, count), item)}] = fixed_sum(work, lane_{s}, width)"
                for k, s in enumerate(self.opts["sums"])]

    def _totals(self, count):
        """The sums' totals, last in ``work``: each its ``count`` partials added in order."""
        nsum = len(self.opts["sums"])
        return [f"work[{_plus('parts', _times(nsum, count), str(k) if k else '')}] = "
                f"fixed_sum(work, {_plus('parts', _times(k, count))}, {count})" for k in range(nsum)]

    # -- the loops -----------------------------------------------------------------------------

    def _loops(self):
        """The element loops: one with the option (accumulation; in an update, the gradient from
        the accumulator or the EMA), and the plain loop on its own."""
        head, index = _ELEMENTS[self.layout, self.kind]
        grad = self.opts["grad"]
        if self.layout == "rows" and self.uses("cj"):
            index += "\ncj = cb + j"

        def copy(grad, tail=""):
            # the gradient's load first; pi = p[i] and the scaling right before the first statement
            # that reads them (see the module docstring)
            first, scale = _GRAD[grad]
            lines, pending = [index, first], {"pi": "pi = p[i]", "gi": scale}
            for stmt in self.body:
                lines += [pending.pop(v) for v in ("pi", "gi") if v in pending and re.search(rf"\b{v}\b", stmt)]
                lines.append(stmt)
            return head + "\n" + _template.indented("\n".join(x for x in lines + [tail] if x), 4)

        if self.kind == "reduction":
            if grad == "read":
                return copy(None)
            option, tail = "accumulate", ""
        else:
            option, tail = ("from_acc or use_ema", _EMA) if grad else ("use_ema", _EMA.split("\n")[1].strip())
        return (f"if {option}:\n{_template.indented(copy(grad, tail), 4)}\n"
                f"{_PLAIN}{_template.indented(copy(None if grad else False), 4)}")

    # -- the kernel ----------------------------------------------------------------------------

    def _args(self):
        o, grad, rows = self.opts, self.opts["grad"], self.layout == "rows"
        if self.kind == "reduction":
            args = [f"p: {_CONST}"] if o["param"] else []
            args += [f"g: {_CONST}"] + [f"{s}: {_ARRAY}" for s in o["states"]]
            args += [f"{s}: {_CONST}" for s in o["reads"]] + self.scalars
            args += [f"acc: {_ARRAY}", f"acc_s: {_FLOAT}", "accumulate: cython.bint"] if grad != "read" else []
            args += [f"grad_scale: {_FLOAT}", f"clip: {_FLOAT}", "work: cython.double[::1]"]
            tail = ("nmat", "nrows", "ncols", "nblk", "width") if rows else ("chunk", "width")
        else:
            args = [f"p: {_ARRAY}"] + ([f"g: {_CONST}"] if grad else []) + [f"{s}: {_ARRAY}" for s in o["states"]]
            args += [f"{s}: {_CONST}" for s in o["reads"]] + self.scalars + ([f"acc: {_ARRAY}"] if grad else [])
            args += [f"ema: {_ARRAY}", f"ema_m: {_FLOAT}", f"ema_c: {_FLOAT}"]
            args += ["from_acc: cython.bint"] if grad else []
            args += ["use_ema: cython.bint"] + ([f"grad_scale: {_FLOAT}", f"clip: {_FLOAT}"] if grad else [])
            tail = ("nmat", "nrows", "ncols") if rows else ("nchunks",)
        return args + [f"{a}: {_SSIZE}" for a in tail] + ["ftz: cython.bint"]

    def _locals(self):
        """The kernel's own locals: the integers, and the floating ones with their types."""
        o, rows = self.opts, self.layout == "rows"
        floats = {"gi": _FLOAT} if self.kind == "reduction" or o["grad"] else {}
        floats.update({"pi": _FLOAT} if self.uses("pi") else {})
        cj = ["cb", "cj"] if self.uses("cj") else []
        if self.kind == "update":
            return (["q", "m", "i", "j", "base", "cb", *cj[1:]] if rows else ["c", "i", "lo", "hi"]), floats
        lanes = [f"lane_{s}" for s in (*o["row_sums"], *o["sums"])]
        if not rows:
            return ["c", "k", "i", "j", "lo", "hi", "base", *lanes], floats
        floats.update({s: "cython.double" for s in (*o["row_sums"], *o["column_sums"])})
        ints = ["t", "r", "k", "i", "j", "m", "base", *lanes]
        ints += ["q"] if self.uses("q", "row_start", "row_end") else []
        ints += cj or (["cj"] if o["column_sums"] else [])  # cj: the element's column, or the column loop's
        return ints + (["cp", "cw"] if o["column_sums"] else []), floats

    def text(self, doc):
        args = self._args()
        ints, floats = self._locals()
        own = [a.split(":")[0] for a in args] + ints + list(floats) + list(_PREAMBLE[self.layout, self.kind])
        clash = sorted({d.split(":")[0].strip() for d in self.decls} & set(own)) or len(own) > len(set(own))
        if clash or (self.uses("pi") and not args[0].startswith("p:")):
            raise ValueError(f"{self.name}: names the generated kernel has itself ({clash}), or pi without p")
        decls = "\n".join([f"{v}: {_SSIZE}" for v in ints] + ["csr: cython.uint"]
                          + [f"{v}: {t}" for v, t in floats.items()] + self.decls)
        joined = (",\n" + " " * (len(self.name) + 5)).join(args)
        if self.kind == "update" and self.layout == "vector":  # _template's entry, chunks of the array
            if doc:
                raise ValueError(f"{self.name}: a vector update has no docstring")
            return _template._ENTRY.format(name=self.name, args=joined, decls=_template.indented(decls, 4),
                                           per_chunk=_template.indented(_chunk(self._loops()), 8))
        build = self._vector_reduction if self.layout == "vector" else (
            self._rows_reduction if self.kind == "reduction" else self._rows_update)
        doc = f'    """{doc}"""\n' if doc else ""
        return _template._DEF.format(name=self.name, args=joined) + doc + _template.indented(build(decls), 4) + "\n"

    def _vector_reduction(self, decls):
        nsum, first = len(self.opts["sums"]), f"lane_{self.opts['sums'][0]}"
        chunk = ["lo = c * chunk", "hi = min(lo + chunk, n)", *self._lanes(f"{_times(nsum, 'width')} * c"),
                 f"for j in range(uidx(0), uidx({_times(nsum, 'width')})):", f"    work[{first} + j] = 0.0",
                 "for k in range((hi - lo + width - 1) // width):", "    base = uidx(lo + k * width)",
                 _template.indented(self._loops(), 4), *self._partials("c", "nparts")]
        return "\n".join([f"n: {_SSIZE} = {'p' if self.opts['param'] else 'g'}.shape[0]",
                          f"nparts: {_SSIZE} = (n + chunk - 1) // chunk",
                          f"parts: {_SSIZE} = {_times(nsum, 'width')} * nparts  # where the chunk partials start",
                          decls, "for c in prange(nparts):", _template.indented(_chunk("\n".join(chunk)), 4),
                          *self._totals("nparts")])

    def _rows_reduction(self, decls):
        o, sec = self.opts, self.sections
        used = len(o["row_sums"]) + len(o["sums"])
        groups = o["lane_groups"] or used
        if used > groups:
            raise ValueError(f"{self.name}: {used} lane groups do not fit in lane_groups={groups}")
        first = f"lane_{(*o['row_sums'], *o['sums'])[0]}"
        early = self.uses("q", "row_start")  # q where the row first needs it (as the hand-written kernels)
        row = ["q = m * nrows + r"] if early else []
        row += [f"for j in range(uidx(0), uidx(wr)):\n    work[lane_{s} + j] = 0.0" for s in o["row_sums"]]
        row += [sec["row_start"]] if "row_start" in sec else []
        row += ["for k in range((ncols + width - 1) // width):",
                "    base = uidx(((m * nrows + r) * ncols) + k * width)"]
        row += ["    cw = cp + uidx(k * width)"] if o["column_sums"] else []
        row += ["    cb = uidx(m * ncols + k * width)"] if self.uses("cj") else []
        row += [_template.indented(self._loops(), 4)]
        row += [f"{s} = fixed_sum(work, lane_{s}, wr)" for s in o["row_sums"]]
        row += ["q = m * nrows + r"] if not early and self.uses("q", "row_end") else []
        row += [sec["row_end"]] if "row_end" in sec else []
        block = ["m = t // nblk"] + (["cp = uidx(t * ncols)"] if o["column_sums"] else [])
        block += self._lanes(f"lanes + {_times(groups, 'width')} * t")
        block += ["for j in range(uidx(0), uidx(ncols)):\n    work[cp + j] = 0.0"] if o["column_sums"] else []
        block += [f"for j in range(uidx(0), uidx({_times(used, 'width')})):\n    work[{first} + j] = 0.0",
                  "for r in range((t - m * nblk) * rb, min((t - m * nblk + 1) * rb, nrows)):",
                  _template.indented("\n".join(row), 4), *self._partials("t", "items")]
        out = [f"items: {_SSIZE} = nmat * nblk", f"rb: {_SSIZE} = (nrows + nblk - 1) // nblk  # rows per block",
               f"lanes: {_SSIZE} = items * ncols  # the column partials come first",
               f"parts: {_SSIZE} = lanes + {_times(groups, 'width')} * items"]
        out += [f"wr: {_SSIZE} = min(width, ncols)  # lanes a row sum uses"] if o["row_sums"] else []
        out += [decls, "for t in prange(items):", _template.indented(_chunk("\n".join(block)), 4)]
        for s in o["column_sums"]:  # the column's partials, one per block, added in order
            column = ["m = cj // ncols", f"{s} = 0.0", "for k in range(nblk):",
                      f"    {s} = {s} + work[(m * nblk + k) * ncols + (cj - m * ncols)]", sec["column_end"]]
            out += ["for cj in prange(nmat * ncols):", _template.indented(_chunk("\n".join(column)), 4)]
        if "matrix_end" in sec:
            out += ["for m in prange(nmat):", _template.indented(_chunk(sec["matrix_end"]), 4)]
        return "\n".join(out + self._totals("items"))

    def _rows_update(self, decls):
        row = ["m = q // nrows", "base = uidx(q * ncols)", "cb = uidx(m * ncols)"]
        row += [self.sections["row_start"]] if "row_start" in self.sections else []
        return "\n".join([decls, "for q in prange(nmat * nrows):  # one row per iteration: no reduction",
                          _template.indented(_chunk("\n".join(row + [self._loops()])), 4)])


def _chunk(work):
    """``work`` between the thread's flush of denormals and its restore (``_template``'s)."""
    return _template._CHUNK.format(loops=work)


def _times(k, x):
    """``k * x`` as source (``x`` for 1, nothing for 0)."""
    return "" if k == 0 else x if k == 1 else f"{k} * {x}"


def _plus(*terms):
    """The terms added, as source (the empty ones left out)."""
    return " + ".join(t for t in terms if t)
