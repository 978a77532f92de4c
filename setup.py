"""Builds the Cython backend: every kernel module of fastopt/_kernels compiled with OpenMP.

The kernels are Cython pure-Python-mode sources that Numba also jits: the extension
``fastopt._cy.<name>`` is compiled from the source of ``fastopt/_kernels/<name>.py`` as
``fastopt/_kernels/_template.py`` renders it (an elementwise rule expanded into its kernel,
written to build/fastopt-kernels/), the very text the Numba backend executes.

If the extensions cannot be built (no compiler, no OpenMP) the install still succeeds and
the Numba backend serves; ``FASTOPT_REQUIRE_CYTHON=1`` turns that into an error.
``FASTOPT_MARCH`` sets ``-march``. By default an x86-64 build machine builds for the highest
level it has: ``x86-64-v4`` (AVX-512) or ``x86-64-v3`` (AVX2, FMA). Baseline SSE2 loops turn
compute-bound (1.7x slower than Numba at 16M elements, and AVX2 still 1.3x in cache at 64K), but
such a build runs only on CPUs of that level: ``FASTOPT_MARCH=x86-64`` builds a wheel for any
x86-64 CPU, ``FASTOPT_MARCH=native`` for this CPU exactly. ``-ffp-contract=off`` keeps FMA contraction
from changing results: the Cython and Numba backends agree to the last bit.
"""
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext


HERE = os.path.dirname(os.path.abspath(__file__))


def _kernel_file(name):
    """A module of fastopt/_kernels, loaded without importing the package (numpy may be absent)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"_fastopt_build_{name}",
                                                  os.path.join(HERE, "fastopt", "_kernels", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KERNELS = _kernel_file("__init__").MODULES
REQUIRED = os.environ.get("FASTOPT_REQUIRE_CYTHON", "") not in ("", "0")


def extensions():
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        if REQUIRED:
            raise
        print("fastopt: Cython not available; skipping the Cython backend", file=sys.stderr)
        return []
    # -fno-math-errno lets sqrt vectorize, -fno-trapping-math lets branches (lerp, clamps) become
    # selects (no result changes: traps are off anyway); -O3 enables the loops' runtime alias checks
    # -fno-inline-functions*: GCC inlines only what is declared inline (the kernels' helpers). A
    # kernel inlined into its Python wrapper, whose memoryview structs have their address taken,
    # kept its loops scalar and unswitched (a serial SGD step at 60K elements 52 us, 9.6 us without).
    # vect-max-version-for-alias-checks: a loop over 6 arrays (Adan: p, g and 4 states) needs more
    # than GCC's default 10 runtime overlap checks, and past them GCC leaves the loop scalar
    cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fopenmp",
              "--param=max-unswitch-insns=1000", "--param=max-unswitch-level=6",
              "--param=vect-max-version-for-alias-checks=100",
              "-fno-inline-functions", "-fno-inline-functions-called-once", "-fno-inline-small-functions",
              # no debug info (Python's CFLAGS ask for -g): modules 4x smaller (Adam's 2.9 -> 0.7 MB)
              "-g0"]
    march = os.environ.get("FASTOPT_MARCH") or default_march()
    if march:
        cflags.append(f"-march={march}")
    sources = _kernel_file("_template").write_sources(KERNELS, os.path.join("build", "fastopt-kernels"))
    exts = [Extension(f"fastopt._cy.{name}", [src], extra_compile_args=cflags, extra_link_args=["-fopenmp"])
            for name, src in zip(KERNELS, sources)]
    exts.append(Extension("fastopt._cy.fastopt_threads", ["fastopt/_cy/fastopt_threads.pyx"],
                          extra_compile_args=cflags, extra_link_args=["-fopenmp"]))
    import Cython
    compiler = _compiler_id()
    for ext in exts:
        CACHED[ext.name] = os.path.join(CACHE_DIR, f"{ext.name}-{_cache_key(ext, Cython.__version__, compiler)}"
                                        + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    # only what the cache lacks is cythonized (Cython's own mtime check re-runs every module in a
    # fresh build environment, whose Cython includes are newer than any generated C file)
    # one Cython and one compiler process per core: 22 modules of two fused specializations each
    # took over 4 minutes in one process
    missing = [ext for ext in exts if not os.path.exists(CACHED[ext.name])]
    hits = [ext for ext in exts if ext not in missing]
    if missing:
        missing = cythonize(missing, language_level=3, quiet=True, include_path=[HERE], nthreads=_jobs())
    return hits + missing


#: compiled extensions by the digest of everything that goes into them (_cache_key): an editable
#: reinstall, ``pip wheel .`` after ``pip install -e .`` or a rebuild after an edit of one rule
#: compile only what changed (a fresh build compiles each module once)
CACHE_DIR = os.path.join(HERE, "build", "fastopt-cache")
#: extension name -> its module's path in the cache
CACHED = {}


def _compiler_id():
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    try:
        return " ".join(cc) + subprocess.run([cc[0], "--version"], capture_output=True, text=True,
                                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return " ".join(cc)


def _cache_key(ext, cython_version, compiler):
    """A digest of an extension's Cython source, the kernels' .pxd files it cimports (``_common``
    always), the flags, Cython, the compiler and the Python ABI."""
    h = hashlib.sha256()
    pxds = ["_common"]
    for path in ext.sources:
        with open(path) as f:
            pxds += sorted(set(re.findall(r"cython\.cimports\.fastopt\._kernels\.(\w+)", f.read())) - {"_common"})
    for path in list(ext.sources) + [os.path.join(HERE, "fastopt", "_kernels", name + ".pxd") for name in pxds]:
        with open(path, "rb") as f:
            h.update(f.read())
    for part in (ext.name, ext.extra_compile_args, ext.extra_link_args, cython_version, compiler,
                 sysconfig.get_config_var("EXT_SUFFIX"), sysconfig.get_config_var("CFLAGS"), sys.version):
        h.update(repr(part).encode())
    return h.hexdigest()[:20]


def _jobs():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_march():
    """The highest x86-64 level (v4: AVX-512, v3: AVX2/FMA) this x86-64 Linux machine has, else None."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        return None
    v3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
    v4 = v3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
    return "x86-64-v4" if v4 <= flags else "x86-64-v3" if v3 <= flags else None


class OptionalBuildExt(build_ext):
    """build_ext that compiles the extensions in parallel, keeps each compiled module in a cache
    keyed by its inputs, and warns instead of failing unless FASTOPT_REQUIRE_CYTHON=1."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = _jobs()

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, OpenMP missing, ...
            self._skip(exc)

    def build_extension(self, ext):
        try:
            self._cached_build(ext)
        except Exception as exc:
            self._skip(exc)

    def _cached_build(self, ext):
        target = self.get_ext_fullpath(ext.name)
        cached = CACHED[ext.name]
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        if os.path.exists(cached):
            tmp = f"{target}.{os.getpid()}.tmp"
            shutil.copyfile(cached, tmp)
            os.replace(tmp, target)  # a new file: a process that has the old one loaded keeps it
            return
        self.force = True  # build_ext's own mtime check would keep a stale in-place module
        super().build_extension(ext)
        os.makedirs(CACHE_DIR, exist_ok=True)
        tmp = f"{cached}.{os.getpid()}.tmp"
        shutil.copyfile(target, tmp)
        os.replace(tmp, cached)  # atomic: parallel builds never read a half-written module
        # the two newest builds of a module stay (e.g. two -march settings), older ones go
        prefix = ext.name + "-"
        old = sorted((e for e in os.scandir(CACHE_DIR) if e.name.startswith(prefix) and not e.name.endswith(".tmp")),
                     key=lambda e: e.stat().st_mtime)[:-2]
        for entry in old:
            os.remove(entry.path)

    def _skip(self, exc):
        if REQUIRED:
            raise
        print(f"fastopt: building the Cython backend failed ({exc}); the Numba backend "
              "will serve. Set FASTOPT_REQUIRE_CYTHON=1 to make this an error.", file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
