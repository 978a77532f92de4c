"""A stand-in for the ``cython`` module where Cython is not installed.

The kernel sources ``import cython`` for its pure-mode decorators; at run time under
Numba or plain Python those decorators do nothing, so this shim is all they need.
"""
compiled = False


def _identity(func):
    return func


ccall = cfunc = inline = nogil = _identity


def exceptval(*args, **kwargs):
    return _identity


def locals(**kwargs):  # noqa: A001 (mirrors cython.locals)
    return _identity
