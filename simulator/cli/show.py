"""``servesim show SCENARIO.yaml [--set ...]``: the fully resolved scenario, defaults included."""

from __future__ import annotations

import argparse
import json

import yaml

from simulator.cli.common import add_command, add_scenario_arguments

EXAMPLES = """examples:
  servesim show workloads/quickstart.yaml
  servesim show workloads/quickstart.yaml --set hardware.gpu=h200 --json
  servesim show workloads/plan_chat.yaml --only engine
"""


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "show",
        help="print the fully resolved scenario (every default filled in) as YAML",
        description="Validate a scenario (with its --set overrides) and print it with every "
        "default filled in; plan: and search: sections are resolved too.",
        examples=EXAMPLES,
    )
    add_scenario_arguments(p, "scenario YAML file", "override a value by dotted key (repeatable)")
    p.add_argument("--only", metavar="SECTION", help="print one top-level section only")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=run)


def resolved_scenario(path: str, overrides: list[str] | None = None) -> dict:
    """The scenario file validated and dumped with defaults (plus plan/search if present)."""
    from simulator.planning import load_plan_file

    loaded = load_plan_file(path, overrides)
    data = loaded.scenario.model_dump(mode="json")
    data["plan"] = loaded.plan.model_dump(mode="json")
    if loaded.search is not None:
        data["search"] = loaded.search.model_dump(mode="json")
    return data


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UserError

    data = resolved_scenario(args.scenario, args.overrides)
    if args.only is not None:
        if args.only not in data:
            raise UserError(f"--only: no section {args.only!r}; sections: {', '.join(data)}")
        data = {args.only: data[args.only]}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    return 0
