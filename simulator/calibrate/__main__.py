"""``python -m simulator.calibrate [options]``: the same as ``servesim calibrate [options]``.

Needs only PyTorch, NumPy and PyYAML for ``--measure``, so it runs on a GPU machine where
the rest of servesim's dependencies are not installed (``torchrun -m simulator.calibrate``
for all-reduce across GPUs)."""

from __future__ import annotations

import argparse
import sys

from simulator.calibrate import command
from simulator.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.calibrate",
        description=command.DESCRIPTION,
        epilog=command.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        for line in exc.messages:
            print(f"servesim calibrate: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
