"""Command line: ``python -m fastopt info | bench`` (also installed as the ``fastopt`` script)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser = argparse.ArgumentParser(prog="fastopt", description="fastopt: fused, in-place optimizer updates")
    sub = parser.add_subparsers(dest="command", metavar="{info,bench}")
    sub.add_parser("info", help="print versions, backends, threads and the CPU (fastopt.show_config())")
    bench = sub.add_parser("bench", help="time one step of each optimizer against NumPy and torch.optim",
                           description="Time one optimizer step on one flat buffer: fastopt, the NumPy "
                                       "reference and torch.optim (fused and for-loop), same threads.")
    from fastopt import _bench
    _bench.add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "info":
        import fastopt
        fastopt.show_config()
        return 0
    if args.command == "bench":
        return _bench.main_from_args(args)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
