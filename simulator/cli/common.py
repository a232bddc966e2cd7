"""Argument definitions shared by the commands that take a scenario."""

from __future__ import annotations

import argparse


def add_command(subparsers, name: str, *, help: str, description: str, examples: str):
    """A subcommand parser whose help ends with ``examples`` as written."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_scenario_arguments(
    parser: argparse.ArgumentParser,
    scenario_help: str = "scenario YAML file",
    set_help: str = "override a scenario value by dotted key (repeatable)",
) -> None:
    """The scenario file and its ``--set dotted.key=value`` overrides."""
    parser.add_argument("scenario", help=scenario_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=set_help,
    )
