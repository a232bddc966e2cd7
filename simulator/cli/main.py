"""``servesim`` command line: parse, dispatch to one module per command, print."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# numpy's BLAS would start a thread per core on its first vector product (the gap
# histogram's sum) and keep them spinning for a while after each: a quarter more CPU time
# for nothing, taken from the worker processes of searches and sweeps. The simulator's
# arrays are small; one thread does.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from simulator.errors import (
    Terminated,
    UserError,
    WorkerStopped,
    clear_termination,
    request_termination,
)

#: Each command and the module defining its ``register(subparsers)``.
COMMANDS = {
    "simulate": "simulator.cli.simulate",
    "plan": "simulator.cli.plan",
    "report": "simulator.cli.report",
    "sweep": "simulator.cli.sweep",
    "fit": "simulator.cli.fit",
    "step": "simulator.cli.step",
    "calibrate": "simulator.calibrate.command",
    "trace": "simulator.cli.trace",
    "list": "simulator.cli.listing",
    "show": "simulator.cli.show",
}

EPILOG = """examples:
  servesim simulate workloads/quickstart.yaml
  servesim simulate workloads/quickstart.yaml --set workload.arrival.rate_per_s=20 --json
  servesim plan workloads/plan_chat.yaml
  servesim report workloads/plan_chat.yaml -o report.html --pdf report.pdf
  servesim sweep workloads/quickstart.yaml --grid hardware.gpu=h100-sxm,h200 -o sweep.csv
  servesim fit --model llama-3.1-70b --gpu h100-sxm --tp 4 --context 8192
  servesim step --model llama-3.1-8b --gpu h100-sxm --decode 64x1024 --prefill 1x512
  servesim calibrate --measure -o my-gpu.jsonl --quick
  servesim trace stats workloads/traces/sample_trace.csv
  servesim list gpus
  servesim show workloads/quickstart.yaml --set hardware.gpu=h200

servesim COMMAND --help shows each command's options and examples.
"""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser. Given the arguments, it registers only the command they
    name (each command module is imported when its command runs, so that ``servesim list``
    loads no simulation, plotting or statistics library); otherwise every command."""
    parser = argparse.ArgumentParser(
        prog="servesim",
        description="Simulate LLM serving: latency, throughput and cost of a deployment.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = _command_named(argv)
    modules = [COMMANDS[named]] if named else list(COMMANDS.values())
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not installed in this build
            raise
        module.register(subparsers)
    return parser


def _command_named(argv: list[str] | None) -> str | None:
    """The command that ``argv`` runs, when its first word is one (not an option)."""
    if argv is None or not argv:
        return None
    first = argv[0]
    return first if first in COMMANDS else None


def _on_sigterm(signum: int, frame: object) -> None:
    request_termination()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``servesim`` console script; returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    clear_termination()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        for line in exc.messages:
            print(f"servesim: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("servesim: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("servesim: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except WorkerStopped as exc:
        print(f"servesim: stopped: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
