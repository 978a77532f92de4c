from libc.string cimport memcpy

# Typed versions of the helpers in _lowp.py (whose docstring defines them), inlined into the
# kernels that cimport them. A bit pattern is reinterpreted by a 4-byte memcpy (GCC: one move).


cdef inline unsigned int f32_bits(float x) noexcept nogil:
    cdef unsigned int u
    memcpy(&u, &x, 4)
    return u


cdef inline float bits_f32(unsigned int u) noexcept nogil:
    cdef float x
    memcpy(&x, &u, 4)
    return x


cdef inline float bf16_to_f32(unsigned short h) noexcept nogil:
    return bits_f32(<unsigned int>h << 16)


cdef inline unsigned short _bf16(unsigned int u, unsigned int bias) noexcept nogil:
    if (u & 0x7FFFFFFF) > 0x7F800000:
        return ((u >> 16) & 0x8000) | 0x7FC0
    return (u + bias) >> 16


cdef inline unsigned short f32_to_bf16(float x) noexcept nogil:
    cdef unsigned int u = f32_bits(x)
    return _bf16(u, 0x7FFF + ((u >> 16) & 1))


cdef inline unsigned short f32_to_bf16_stochastic(float x, unsigned int r) noexcept nogil:
    return _bf16(f32_bits(x), r & 0xFFFF)


cdef inline float f16_to_f32(unsigned short h) noexcept nogil:
    cdef unsigned int s = (<unsigned int>h & 0x8000) << 16
    cdef unsigned int e = (h >> 10) & 0x1F
    cdef unsigned int m = h & 0x3FF
    if e == 0:
        return bits_f32(s | f32_bits(bits_f32(0x38800000 | (m << 13)) - bits_f32(0x38800000)))
    if e == 31:
        return bits_f32(s | 0x7F800000 | (m << 13))
    return bits_f32(s | ((e + 112) << 23) | (m << 13))


cdef inline unsigned int _f16_nan(unsigned int a) noexcept nogil:
    cdef unsigned int m = (a >> 13) & 0x3FF
    if m == 0:
        m = 1
    return 0x7C00 | m


cdef inline unsigned short f32_to_f16(float x) noexcept nogil:
    cdef unsigned int u = f32_bits(x)
    cdef unsigned int a = u & 0x7FFFFFFF
    cdef unsigned int h, t
    if a > 0x7F800000:
        h = _f16_nan(a)
    elif a < 0x38800000:
        h = f32_bits(bits_f32(a) + bits_f32(0x3F000000)) - 0x3F000000
    else:
        t = min(a, <unsigned int>0x47800000) - 0x38000000
        h = (t + 0xFFF + ((t >> 13) & 1)) >> 13
    return ((u >> 16) & 0x8000) | h


cdef inline unsigned short f32_to_f16_stochastic(float x, unsigned int r) noexcept nogil:
    cdef unsigned int u = f32_bits(x)
    cdef unsigned int a = u & 0x7FFFFFFF
    cdef unsigned int t
    if a > 0x7F800000:
        return ((u >> 16) & 0x8000) | _f16_nan(a)
    if a < 0x38800000:
        t = f32_bits(bits_f32(a) + bits_f32(0x38800000)) - 0x38800000
    else:
        t = min(a, <unsigned int>0x47800000) - 0x38000000
    return ((u >> 16) & 0x8000) | ((t + (r & 0x1FFF)) >> 13)


cdef inline unsigned int hash32(unsigned int x) noexcept nogil:
    x = (x ^ (x >> 16)) * <unsigned int>0x7FEB352D
    x = (x ^ (x >> 15)) * <unsigned int>0x846CA68B
    return x ^ (x >> 16)


cdef inline unsigned int random_bits(unsigned int key, Py_ssize_t index) noexcept nogil:
    cdef size_t i = <size_t>index
    return hash32(key ^ <unsigned int>i ^ <unsigned int>(i >> 32) * <unsigned int>0x9E3779B9)
