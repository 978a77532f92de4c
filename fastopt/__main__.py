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
    from fastopt import _bench, _bench_torch
    _bench.add_arguments(bench)
    bench_torch = sub.add_parser("bench-torch", help="time the optimizer step of a model's parameters in PyTorch",
                                 description=_bench_torch.__doc__.splitlines()[0].replace("``", ""))
    _bench_torch.add_arguments(bench_torch)
    from fastopt import _bench_zero
    bench_zero = sub.add_parser("bench-zero", help="ZeRO-1 on 2 gloo ranks against one process (GPT-2 small shapes)",
                                description=_bench_zero.__doc__.splitlines()[0].replace("``", ""))
    _bench_zero.add_arguments(bench_zero)
    from fastopt import _bench_loop
    bench_loop = sub.add_parser("bench-loop", help="the optimizer step inside training loops, next to other thread pools",
                                description=_bench_loop.__doc__.splitlines()[0].replace("``", ""))
    _bench_loop.add_arguments(bench_loop)
    from fastopt import _bench_sweep
    bench_sweep = sub.add_parser("bench-sweep", help="GB/s over sizes 2^10..2^26 on heap, offset and staggered arrays; flags cliffs",
                                 description=_bench_sweep.__doc__.splitlines()[0].replace("``", ""))
    _bench_sweep.add_arguments(bench_sweep)
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
        return _bench.main_from_args(args)
    if args.command == "bench-torch":
        return _bench_torch.main_from_args(args)
    if args.command == "bench-zero":
        return _bench_zero.main_from_args(args)
    if args.command == "bench-loop":
        return _bench_loop.main_from_args(args)
    if args.command == "bench-sweep":
        return _bench_sweep.main_from_args(args)
    if args.command == "demo":
        return _demo.main_from_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
