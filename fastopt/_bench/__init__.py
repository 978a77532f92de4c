"""The benchmark commands (``python -m fastopt bench | bench-torch | bench-zero | bench-sweep |
bench-loop``), a module each, and what they share.

The commands:

- ``step``: ``bench``, one optimizer step on one flat buffer against NumPy and torch (the run and
  its table, the command line, ``--json``);
- ``torch_step``: ``bench-torch``, the step of a real model's parameters in PyTorch;
- ``zero``: ``bench-zero``, ZeRO-1 on 2 gloo ranks against one process;
- ``sweep``: ``bench-sweep``, GB/s over sizes on three allocations, and the cliffs;
- ``loop``: ``bench-loop``, the step inside training loops, each variant in a fresh process
  (re-runs, ratios, the table); ``loop_scenarios``: the loops those processes run.

What they and the pytest-benchmark suites in ``benchmarks/`` share:

- ``impls``: the optimizers and their hyperparameters, the implementations compared (fastopt, the
  NumPy reference, torch.optim fused / foreach / for-loop, DeepSpeed) and the bytes a step moves;
- ``buffers``: the staggered flat (params, grads) buffers with deterministic values;
- ``timing``: interleaved timing with a spread bound (noisy rows), page faults per step, the other
  runnable tasks on the machine;
- ``ceiling``: the memory ceiling, STREAM-like kernels at the same threads;
- ``plot``: ``bench --plot``'s PNG of GB/s against size.
"""
