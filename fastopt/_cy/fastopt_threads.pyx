# cython: language_level=3
"""OpenMP thread control for the Cython backend. Its file name is what threadpoolctl matches to
find fastopt's pool (fastopt/_threads.py), so fastopt imports it on import when it is built."""
cimport openmp


def set_num_threads(int n):
    """Threads for the parallel regions started by the calling thread."""
    openmp.omp_set_num_threads(n)


def get_max_threads():
    return openmp.omp_get_max_threads()


def get_num_procs():
    return openmp.omp_get_num_procs()
