# cython: language_level=3
"""OpenMP thread control for the Cython backend."""
cimport openmp


def set_num_threads(int n):
    """Threads for the parallel regions started by the calling thread."""
    openmp.omp_set_num_threads(n)


def get_max_threads():
    return openmp.omp_get_max_threads()


def get_num_procs():
    return openmp.omp_get_num_procs()
