cimport cython
from cython cimport floating

# Typed versions of the helpers in _common.py, inlined into every kernel module.

cdef inline Py_ssize_t uidx(Py_ssize_t i) noexcept nogil:
    return i


cdef inline Py_ssize_t chunk_size(Py_ssize_t n, Py_ssize_t nchunks) noexcept nogil:
    return ((n + nchunks - 1) // nchunks + 15) // 16 * 16


cdef inline floating scaled_grad(floating gi, floating grad_scale, floating clip) noexcept nogil:
    gi = gi * grad_scale
    if gi > clip:
        gi = clip
    elif gi < -clip:
        gi = -clip
    return gi


cdef inline floating lerp(floating a, floating b, floating w) noexcept nogil:
    if w < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (<floating>1 - w)  # <floating>: Cython would write the literal as a double


cdef inline double sq(double x) noexcept nogil:
    return x * x


@cython.boundscheck(False)
@cython.wraparound(False)
cdef inline double fixed_sum(double[::1] x, Py_ssize_t start, Py_ssize_t count) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t k
    for k in range(count):
        s = s + x[start + k]
    return s
