"""The single source of every update rule.

Each module here is Cython pure-Python mode: plain loops over flat 1-D arrays that
``fastopt._backends`` jits with Numba, that ``setup.py`` compiles with Cython into
``fastopt._cy.<module>``, and that also run as plain Python.  See DESIGN.md section 2.
An elementwise update rule holds only its per-element math; ``_template`` expands it into
the kernel (chunked loop, gradient prologue, fused accumulation and EMA).

Conventions every kernel follows:
- arrays are C-contiguous 1-D and of one float dtype; optional state arrays not in
  use are passed empty and never touched;
- every scalar is of the arrays' dtype (computations stay in float32 for float32);
  per-step scalars are computed in Python in double and passed in; 16-bit storage
  (bfloat16, float16) is passed as its bits (``cython.ushort[::1]``) and converted by the
  helpers of ``_lowp`` (the ``convert`` kernel: format, mode, random key and index base are
  C integers);
- ``grad_scale`` multiplies the gradient first (clipping coefficient, loss-scale
  unscale, and the sign for ``maximize``), then ``clip`` clamps it to [-clip, clip]
  (``inf`` disables it);
- ``nchunks`` splits the work into that many contiguous chunks run by ``prange``;
  ``1`` runs serially.
"""

#: kernel modules, in build order; setup.py compiles each into fastopt._cy.<name>
FOUNDATION = ("sgd", "adam", "rmsprop", "adagrad", "reduce", "stream", "accumulate", "convert")
TORCH_FAMILY = ("adadelta", "adamax", "nadam", "radam", "rprop", "asgd")
KERAS_OPTAX = ("ftrl", "lion", "moments", "adan", "schedule_free")
PER_ARRAY = ("lamb", "lars", "adafactor")
MODULES = FOUNDATION + TORCH_FAMILY + KERAS_OPTAX + PER_ARRAY
