"""Generate the reference pages from the code: the scenario schema (from the pydantic
config models, with each field's ``#:`` comment) and every command's ``--help``.

    python docs/gen_reference.py            # rewrite docs/reference/scenario.md, commands.md
    python docs/gen_reference.py --check    # exit 1 if either page is out of date
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import json
import os
import sys
import textwrap
import typing
from pathlib import Path

from pydantic import BaseModel

DOCS = Path(__file__).resolve().parent


#: Meanings of fields the config models leave uncommented (by "Model.field" or "field").
FIELD_NOTES = {
    "Scenario.name": "Name shown in outputs and reports.",
    "Scenario.description": "One line saying what the scenario is about.",
    "Scenario.model": "Catalog model name (`servesim list models`) or a path to a Hugging "
    "Face config.json.",
    "Scenario.hardware": "GPUs of a replica and how many replicas.",
    "Scenario.engine": "Serving engine settings: batching, limits, precision.",
    "Scenario.routing": "How arriving requests are spread over replicas.",
    "Scenario.workload": "The traffic: arrivals and request lengths, or a trace.",
    "Scenario.cost": "Prices used by the run's own cost per token.",
    "Scenario.output": "What the run records and measures.",
    "gpu": "Catalog GPU name (`servesim list gpus`) or a path to a GPU YAML.",
    "tensor_parallel": "GPUs a replica's layers are split across (tensor parallelism).",
    "replicas": "Identical copies of the model serving behind the router.",
    "interconnect": "Catalog link between the GPUs of a node (`servesim list links`); "
    "default: the GPU's own.",
    "calibration": "Calibration file of fitted cost-model parameters; `none` for datasheet "
    "defaults; default: the shipped file of the GPU, if any.",
    "policy": "Batching policy name (`servesim list policies`).",
    "RoutingConfig.policy": "Routing policy name (`servesim list routers`).",
    "GroupConfig.name": "Name of the group in outputs; default: GPU and tensor-parallel size.",
    "DisaggregatedConfig.prefill": "Prefill pool: takes arrivals, prefills their prompts.",
    "max_num_seqs": "Most sequences in one batch.",
    "max_num_batched_tokens": "Most tokens (prefill + decode) in one step; under a policy "
    "that prefills prompts whole, a longer prompt is prefilled alone in a step of its own.",
    "kv_block_size": "Tokens per KV-cache block (paged attention).",
    "gpu_memory_utilization": "Fraction of GPU memory the engine may use (weights, "
    "activations, KV cache).",
    "weight_dtype": "Precision of the weights (bf16, fp8, int4 formats such as awq or q4_k_m).",
    "kv_dtype": "Precision of the KV cache.",
    "speculative": "Speculative decoding with a draft model.",
    "decode": "Decode pool of a disaggregated deployment.",
    "kv_link": "Link carrying KV caches from prefill to decode replicas.",
    "process": "Arrival process name.",
    "rate_per_s": "Mean arrival rate (requests/s).",
    "interval_s": "Fixed gap between arrivals (s).",
    "cv": "Coefficient of variation of the gaps (1 = Poisson, larger = burstier).",
    "distribution": "Length distribution name.",
    "mean": "Mean length (tokens).",
    "sigma": "Standard deviation of the log of the length.",
    "std": "Standard deviation (tokens).",
    "min": "Smallest length (tokens).",
    "max": "Largest length (tokens).",
    "value": "The fixed length (tokens).",
    "arrival": "When requests arrive.",
    "prompt_tokens": "Prompt lengths.",
    "output_tokens": "Output lengths.",
    "num_requests": "Requests to simulate (with duration_s too: whichever limit comes first).",
    "duration_s": "Simulated arrival period (s), instead of a request count or with one "
    "(whichever limit comes first).",
    "seed": "Seed of every random draw of the workload (one seed, one result).",
    "trace": "Path of a trace file to replay instead of generated arrivals.",
    "format": "Trace layout (azure, burstgpt, servesim); default: guessed from the columns.",
    "time_scale": "Multiplies the trace's gaps (0.5 replays it twice as fast).",
    "sample": "Fraction of the trace's requests kept.",
    "on_bad_row": "What to do with a malformed trace row (error or skip).",
    "ttft_ms": "Time to first token targets by percentile (ms).",
    "tpot_ms": "Time per output token targets by percentile (ms).",
    "itl_ms": "Inter-token latency targets by percentile (ms).",
    "e2e_ms": "End-to-end latency targets by percentile (ms).",
    "min_replicas": "Fewest replicas the fleet shrinks to.",
    "max_replicas": "Most replicas the fleet grows to.",
    "scale_down_after_s": "Time the signal must stay low before a replica is removed (s).",
    "scale_down_fraction": "Scale down below this fraction of the target.",
    "gpus": "GPU names to compare.",
    "server_price_usd": "Price of one server (USD).",
    "gpus_per_server": "GPUs in one server.",
    "life_years": "Years the server is written off over.",
    "electricity_usd_per_kwh": "Electricity price (USD/kWh).",
    "pue": "Power usage effectiveness of the data center (facility / IT power).",
    "hosting_usd_per_kw_month": "Colocation price per kW of provisioned power per month.",
    "staff_usd_per_month": "Operations staff cost per month.",
    "busy_power_fraction": "GPU draw when busy, as a fraction of TDP.",
}


def field_comments(cls: type) -> dict[str, str]:
    """``#:`` comments (and string literals right after a field) of a class's fields."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        comment: list[str] = []
        row = node.lineno - 2
        while row >= 0 and lines[row].strip().startswith("#:"):
            comment.insert(0, lines[row].strip()[2:].strip())
            row -= 1
        following = body[i + 1] if i + 1 < len(body) else None
        if (
            not comment
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            comment = [" ".join(following.value.value.split())]
        if comment:
            found[node.target.id] = " ".join(comment)
    return found


def _models_below(model: type[BaseModel], seen: dict[str, type]) -> None:
    if model.__name__ in seen:
        return
    seen[model.__name__] = model
    for info in model.model_fields.values():
        for arg in _walk_types(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _models_below(arg, seen)


def _walk_types(annotation) -> list:
    out = [annotation]
    for arg in typing.get_args(annotation):
        out += _walk_types(arg)
    return out


def _type_text(prop: dict) -> str:
    if "$ref" in prop:
        name = prop["$ref"].split("/")[-1]
        return f"[{name}](#{name.lower()})"
    if "oneOf" in prop:
        return " or ".join(_type_text(p) for p in prop["oneOf"])
    if "anyOf" in prop:
        parts = [_type_text(p) for p in prop["anyOf"] if p.get("type") != "null"]
        optional = any(p.get("type") == "null" for p in prop["anyOf"])
        return " or ".join(parts) + (" (optional)" if optional else "")
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"mapping to {_type_text(values)}"
        return "mapping"
    bounds = []
    for key, sign in (
        ("exclusiveMinimum", ">"),
        ("minimum", "≥"),
        ("exclusiveMaximum", "<"),
        ("maximum", "≤"),
    ):
        if key in prop:
            bounds.append(f"{sign} {prop[key]}")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _default_text(prop: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return "section defaults"
    return f"`{json.dumps(prop['default'])}`"


def scenario_reference() -> str:
    from simulator.config.scenario import Scenario

    schema = Scenario.model_json_schema()
    classes: dict[str, type] = {}
    _models_below(Scenario, classes)
    defs = {"Scenario": schema, **schema.get("$defs", {})}
    out = [
        "# Scenario reference",
        "",
        "<!-- generated by docs/gen_reference.py from simulator/config; do not edit -->",
        "",
        "A scenario is a YAML mapping validated by these models (unknown keys are errors).",
        "Any value can be overridden on the command line with `--set dotted.key=value`,",
        "and `servesim show SCENARIO.yaml` prints a scenario with every default filled in",
        "(an engine profile's limits and scheduler included).",
        "",
        "Older forms still load: `batching: NAME` with `batching_options: {...}` (read as",
        "`batching: {policy: NAME, ...}`), and `engine: {batching: disaggregated, prefill: ...,",
        "decode: ..., kv_link: ...}` (read as the `disaggregated:` section).",
        "",
    ]
    order = ["Scenario", *sorted(k for k in defs if k != "Scenario")]
    for name in order:
        entry = defs[name]
        out += [f"## {name}", ""]
        doc = (entry.get("description") or "").strip()
        if doc:
            out += [" ".join(doc.split()), ""]
        comments = field_comments(classes[name]) if name in classes else {}
        required = set(entry.get("required", []))
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, prop in entry.get("properties", {}).items():
            meaning = comments.get(key) or FIELD_NOTES.get(f"{name}.{key}")
            meaning = (meaning or FIELD_NOTES.get(key, "")).replace("|", "\\|")
            out.append(
                f"| `{key}` | {_type_text(prop)} | {_default_text(prop, key in required)} "
                f"| {meaning} |"
            )
        out.append("")
    return "\n".join(out)


def commands_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    parser = argparse.ArgumentParser(prog="servesim")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = []
    from simulator.cli.main import COMMANDS

    for command, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        module.register(sub)
        names.append(command)
    out = [
        "# Command reference",
        "",
        "<!-- generated by docs/gen_reference.py from simulator/cli; do not edit -->",
        "",
        "Every command prints one line per mistake and exits with status 2 on bad input.",
        "`--json` prints machine-readable output; colours appear only on a terminal",
        "(`NO_COLOR=1` turns them off).",
        "",
    ]
    for command in names:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            parser.parse_args([command, "--help"])
        out += [f"## servesim {command}", "", "```text", buffer.getvalue().rstrip(), "```", ""]
    return "\n".join(out)


PAGES = {
    DOCS / "reference" / "scenario.md": scenario_reference,
    DOCS / "reference" / "commands.md": commands_reference,
}


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="fail if a page is out of date")
    check = args.parse_args(argv).check
    stale = []
    for path, build in PAGES.items():
        text = build() + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} is out of date: run python docs/gen_reference.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
