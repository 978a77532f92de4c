"""Compiled Cython builds of fastopt._kernels (present when the extensions were built)."""
