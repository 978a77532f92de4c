"""Storage modes of an elementwise kernel: the rule's math unchanged, its loads and stores rewritten.

A rule body reads ``gi``, ``pi``, ``m[i]`` and writes ``p[i]``, ``m[i]`` as floats; it never
knows how they are stored (DESIGN.md section 6). A :class:`Storage` names, for one kernel
variant, the storage of the parameter, the gradient and the states, whether an fp32 master copy
is kept and how a low-precision parameter is rounded. :func:`variant` rewrites the pieces of a
rendered kernel (arguments, local declarations, the chunk's loops) into that variant:

- every ``cython.floating`` becomes the compute type: float32 when anything is stored in 16 bits
  or float32, float64 only for an all-float64 kernel;
- a 16-bit array is its bits (``cython.ushort[::1]``): a read ``x[i]`` becomes
  ``bf16_to_f32(x[i])`` (``f16_to_f32``), exact; a store ``x[i] = v`` becomes
  ``x[i] = f32_to_bf16(v)``, nearest even (the states always; the parameter unless stochastic);
- ``rounding="stochastic"``: the parameter's store is ``f32_to_bf16_stochastic(v,
  random_bits(key, base + i))``: ``key`` (``_lowp.step_key(seed, step)``) and ``base`` (the
  call's first element in the optimizer's numbering) are the variant's extra scalars, so the bits
  depend on (seed, step, element) only, never on threads, chunks or the backend;
- ``master=True``: the kernel takes ``master`` (compute type) after the states; the body's
  ``pi`` is read from it, a store ``p[i] = v`` becomes ``master[i] = v`` then the rounded
  ``p[i]``, and later reads of ``p[i]`` (the EMA) read the master;
- the accumulator and the EMA are in the compute type (an average kept in 16 bits would round
  its small moves away).

A variant is named ``<rule>__<tag>`` (:func:`tag`, :func:`parse`), e.g.
``adam__pbf16_gbf16_sf32_m_sr``; ``_template.render(..., storages=...)`` appends the variants
asked for to a module, so a build compiles only those.
"""
from __future__ import annotations

import re
from typing import NamedTuple

#: storage names -> (array type, the load of a stored value, the store of a float, nearest)
_KINDS = {
    "f64": ("cython.double", "{x}", "{v}"),
    "f32": ("cython.float", "{x}", "{v}"),
    "bf16": ("cython.ushort", "bf16_to_f32({x})", "f32_to_bf16({v})"),
    "f16": ("cython.ushort", "f16_to_f32({x})", "f32_to_f16({v})"),
}
_STOCHASTIC = {"bf16": "f32_to_bf16_stochastic({v}, random_bits(key, base + i))",
               "f16": "f32_to_f16_stochastic({v}, random_bits(key, base + i))"}
#: the NumPy dtype name of each storage name
DTYPES = {"f64": "float64", "f32": "float32", "bf16": "bfloat16", "f16": "float16"}
#: the helpers a variant's text calls (``_lowp``)
HELPERS = ("bf16_to_f32", "f32_to_bf16", "f32_to_bf16_stochastic", "f16_to_f32", "f32_to_f16",
           "f32_to_f16_stochastic", "random_bits")


#: the imports a module with storage variants adds to the elementwise kernels'
IMPORTS = f'''
if cython.compiled:
    from cython.cimports.fastopt._kernels._lowp import ({", ".join(HELPERS)})
else:
    from fastopt._kernels._lowp import ({", ".join(HELPERS)})
'''


def ctype(storage):
    """The Cython type ``storage`` computes in."""
    return _KINDS[storage.compute][0]


class Storage(NamedTuple):
    """How one kernel variant stores its operands (storage names: f64, f32, bf16, f16)."""

    param: str
    grad: str
    state: str
    master: bool = False
    rounding: str = "nearest"

    @property
    def compute(self):
        """The compute type's storage name: f64 only for an all-float64 kernel."""
        return "f64" if {self.param, self.grad, self.state} == {"f64"} else "f32"

    def check(self):
        """This storage, or a ValueError saying what is not supported."""
        for what in ("param", "grad", "state"):
            if getattr(self, what) not in _KINDS:
                raise ValueError(f"{what} storage {getattr(self, what)!r}: choose one of {sorted(_KINDS)}")
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(f"rounding {self.rounding!r}: choose 'nearest' or 'stochastic'")
        low = self.param in ("bf16", "f16")
        if (self.master or self.rounding == "stochastic") and not low:
            raise ValueError("master weights and stochastic rounding are for bfloat16/float16 parameters")
        if self.master and self.rounding == "stochastic":
            raise ValueError("stochastic rounding is for parameters without a master copy")
        if "f64" in (self.param, self.grad, self.state) and self.compute != "f64":
            raise ValueError("float64 storage is only for all-float64 kernels")
        return self


def tag(storage):
    """The variant suffix of ``storage``: ``p<param>_g<grad>_s<state>[_m][_sr]``."""
    return (f"p{storage.param}_g{storage.grad}_s{storage.state}" + ("_m" if storage.master else "")
            + ("_sr" if storage.rounding == "stochastic" else ""))


_TAG = re.compile(r"^p(\w+?)_g(\w+?)_s(\w+?)(_m)?(_sr)?$")


def parse(name):
    """``(rule, Storage)`` of a variant's kernel name ``<rule>__<tag>``, or ``(name, None)``."""
    rule, sep, suffix = name.partition("__")
    if not sep:
        return name, None
    m = _TAG.match(suffix)
    if m is None:
        raise ValueError(f"{name!r} is not a storage variant's name")
    return rule, Storage(m[1], m[2], m[3], bool(m[4]), "stochastic" if m[5] else "nearest").check()


def variant(name, args, decls, chunk, states, storage):
    """The variant ``storage`` of a kernel's pieces: ``(name, args, decls, chunk)``."""
    storage.check()
    ctype_ = ctype(storage)
    kinds = {"p": storage.param, "g": storage.grad, **{s: storage.state for s in states}}
    out = []
    for a in args:
        arg, _, ann = a.partition(": ")
        if arg in kinds:
            base = _KINDS[kinds[arg]][0]
            ann = f"cython.const[{base}][::1]" if ann.startswith("cython.const") else f"{base}[::1]"
        out.append(f"{arg}: {ann.replace('cython.floating', ctype_)}")
        if arg == (states[-1] if states else "g"):  # the extras follow the arrays
            if storage.master:
                out.append(f"master: {ctype_}[::1]")
            if storage.rounding == "stochastic":
                out += ["key: cython.uint", "base: cython.size_t"]  # unsigned, as the loop index (Numba)
    decls = [d.replace("cython.floating", ctype_) for d in decls]
    return f"{name}__{tag(storage)}", out, decls, _rewritten(chunk, kinds, storage)


def _rewritten(chunk, kinds, storage):
    """The chunk's loops with each stored operand's loads and stores rewritten."""
    param_store = (_STOCHASTIC[storage.param] if storage.rounding == "stochastic" else _KINDS[storage.param][2])
    lines = []
    for line in chunk.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        m = re.match(r"^\s*(\w+)\[i\] = (.*)$", line)
        if m and m[1] in kinds:
            target, value = m[1], _loads(m[2], kinds, storage)
            if value.count("(") != value.count(")"):
                raise ValueError(f"a store must be one line: {line.strip()!r}")
            if target == "p" and storage.master:
                lines += [f"{indent}master[i] = {value}", f"{indent}p[i] = {param_store.format(v='master[i]')}"]
            else:
                store = param_store if target == "p" else _KINDS[kinds[target]][2]
                lines.append(f"{indent}{target}[i] = {store.format(v=value)}")
        else:
            lines.append(_loads(line, kinds, storage))
    return "\n".join(lines)


def _loads(text, kinds, storage):
    """``text`` with each read of a stored operand ``x[i]`` converted to the compute type."""
    def load(m):
        if m[1] == "p" and storage.master:
            return "master[i]"
        return _KINDS[kinds[m[1]]][1].format(x=m[0])
    return re.sub(r"\b(%s)\[i\]" % "|".join(map(re.escape, kinds)), load, text)
