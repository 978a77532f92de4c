"""Command line: ``python -m fastopt info | bench | bench-torch | bench-zero | bench-loop | bench-sweep | demo`` (also the ``fastopt`` script)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser = argparse.ArgumentParser(prog="fastopt", description="fastopt: fused, in-place optimizer updates")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench,bench-torch,bench-zero,bench-loop,bench-sweep,demo}")
    sub.add_parser("info", help="print versions, backends, threads and the CPU (fastopt.show_config())")
    bench = sub.add_parser("bench", help="time one step of each optimizer against NumPy and torch.optim",
                           description="Time one optimizer step on one flat buffer: fastopt, the NumPy "
                                       "reference and torch.optim (fused and for-loop), same threads.")
    from fastopt._bench import step, torch_step
    step.add_arguments(bench)
    bench_torch = sub.add_parser("bench-torch", help="time the optimizer step of a model's parameters in PyTorch",
                                 description=torch_step.__doc__.splitlines()[0].replace("``", ""))
    torch_step.add_arguments(bench_torch)
    from fastopt._bench import zero
    bench_zero = sub.add_parser("bench-zero", help="ZeRO-1 on 2 gloo ranks against one process (GPT-2 small shapes)",
                                description=zero.__doc__.splitlines()[0].replace("``", ""))
    zero.add_arguments(bench_zero)
    from fastopt._bench import loop
    bench_loop = sub.add_parser("bench-loop", help="the optimizer step inside training loops, next to other thread pools",
                                description=loop.__doc__.splitlines()[0].replace("``", ""))
    loop.add_arguments(bench_loop)
    from fastopt._bench import sweep
    bench_sweep = sub.add_parser("bench-sweep", help="GB/s over sizes 2^10..2^26 on heap, offset and staggered arrays; flags cliffs",
                                 description=sweep.__doc__.splitlines()[0].replace("``", ""))
    sweep.add_arguments(bench_sweep)
    from fastopt import _demo
    demo = sub.add_parser("demo", help="train a small NumPy MLP on the digits data with each optimizer",
                          description="Train a small NumPy MLP on scikit-learn's digits with each "
                                      "optimizer; print a table and plot the loss curves.")
    _demo.add_arguments(demo)
    args = parser.parse_args(argv)
    if args.command == "info":
        import fastopt
        fastopt.show_config()
        return 0
    if args.command == "bench":
        return step.main_from_args(args)
    if args.command == "bench-torch":
        return torch_step.main_from_args(args)
    if args.command == "bench-zero":
        return zero.main_from_args(args)
    if args.command == "bench-loop":
        return loop.main_from_args(args)
    if args.command == "bench-sweep":
        return sweep.main_from_args(args)
    if args.command == "demo":
        return _demo.main_from_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
