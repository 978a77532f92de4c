"""Command line: ``python -m fastopt info | bench | bench-torch`` (also the ``fastopt`` script)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser = argparse.ArgumentParser(prog="fastopt", description="fastopt: fused, in-place optimizer updates")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench,bench-torch}")
    sub.add_parser("info", help="print versions, backends, threads and the CPU (fastopt.show_config())")
    bench = sub.add_parser("bench", help="time one step of each optimizer against NumPy and torch.optim",
                           description="Time one optimizer step on one flat buffer: fastopt, the NumPy "
                                       "reference and torch.optim (fused and for-loop), same threads.")
    from fastopt import _bench, _bench_torch
    _bench.add_arguments(bench)
    bench_torch = sub.add_parser("bench-torch", help="time the optimizer step of a model's parameters in PyTorch",
                                 description=_bench_torch.__doc__.splitlines()[0])
    _bench_torch.add_arguments(bench_torch)
    args = parser.parse_args(argv)
    if args.command == "info":
        import fastopt
        fastopt.show_config()
        return 0
    if args.command == "bench":
        return _bench.main_from_args(args)
    if args.command == "bench-torch":
        return _bench_torch.main_from_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
