"""Builds the Cython backend: every kernel module of fastopt/_kernels compiled with OpenMP.

The kernels are Cython pure-Python-mode sources that Numba also jits, so the extension
``fastopt._cy.<name>`` is compiled straight from ``fastopt/_kernels/<name>.py``.

If the extensions cannot be built (no compiler, no OpenMP) the install still succeeds and
the Numba backend serves; ``FASTOPT_REQUIRE_CYTHON=1`` turns that into an error.
``FASTOPT_MARCH`` (e.g. ``native`` or ``x86-64-v3``) adds ``-march=...`` for a wheel that
runs only on such CPUs; the default is portable.
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

KERNELS = ("sgd", "adam", "rmsprop", "adagrad", "reduce")
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
    # -fno-math-errno lets sqrt vectorize; -O3 enables the runtime alias checks the loops need
    cflags = ["-O3", "-fno-math-errno", "-fopenmp"]
    march = os.environ.get("FASTOPT_MARCH")
    if march:
        cflags.append(f"-march={march}")
    exts = [Extension(f"fastopt._cy.{name}", [f"fastopt/_kernels/{name}.py"],
                      extra_compile_args=cflags, extra_link_args=["-fopenmp"])
            for name in KERNELS]
    exts.append(Extension("fastopt._cy.openmp", ["fastopt/_cy/openmp.pyx"],
                          extra_compile_args=cflags, extra_link_args=["-fopenmp"]))
    return cythonize(exts, language_level=3, quiet=True)


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing unless FASTOPT_REQUIRE_CYTHON=1."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing, OpenMP missing, ...
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc):
        if REQUIRED:
            raise
        print(f"fastopt: building the Cython backend failed ({exc}); the Numba backend "
              "will serve. Set FASTOPT_REQUIRE_CYTHON=1 to make this an error.", file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
