cimport cython
from cython cimport floating
from libc.math cimport fabs as fabs_double, fabsf, sqrt as sqrt_double, sqrtf

# Typed versions of the helpers in _common.py, inlined into every kernel module.

cdef inline Py_ssize_t uidx(Py_ssize_t i) noexcept nogil:
    return i


cdef extern from *:
    """
    #if defined(__x86_64__) || defined(_M_X64) || defined(__SSE__)
    #include <xmmintrin.h>
    static inline unsigned int fastopt_get_csr(void) { return _mm_getcsr(); }
    static inline void fastopt_set_csr(unsigned int csr) { _mm_setcsr(csr); }
    #else  /* no MXCSR: flushing denormals is not available, the kernels run as they are */
    static inline unsigned int fastopt_get_csr(void) { return 0; }
    static inline void fastopt_set_csr(unsigned int csr) { (void)csr; }
    #endif
    """
    unsigned int fastopt_get_csr() nogil
    void fastopt_set_csr(unsigned int csr) nogil


cdef inline unsigned int denormals_flushed(bint ftz) noexcept nogil:
    cdef unsigned int csr = 0
    if ftz:
        csr = fastopt_get_csr()
        fastopt_set_csr(csr | 0x8040)  # FTZ | DAZ
    return csr


cdef inline void restore_csr(bint ftz, unsigned int csr) noexcept nogil:
    if ftz:
        fastopt_set_csr(csr)


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


cdef inline floating sqrt(floating x) noexcept nogil:
    # float32 kernels take the single-precision root (as Numba does): libc's sqrt on a float is a
    # double root and two conversions, half as many lanes per instruction (Ftrl's loop ran 2.4x
    # slower). Both are correctly rounded, so the float result is the same bit for bit.
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt_double(x)


cdef inline floating fabs(floating x) noexcept nogil:
    if floating is float:  # as sqrt: no round trip through double
        return fabsf(x)
    else:
        return fabs_double(x)


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
