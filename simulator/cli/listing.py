"""``servesim list gpus|models|links|policies|routers|profiles|prices``: what the catalog holds."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

EXAMPLES = """examples:
  servesim list gpus
  servesim list models --json
  servesim list prices --gpu h100-sxm
  servesim list prices --section api
  servesim list policies
"""

KINDS = ("gpus", "models", "links", "policies", "routers", "profiles", "prices")
PRICE_SECTIONS = ("cloud", "purchase", "api")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "list",
        help="list catalog GPUs, models, links, policies, routers, engine profiles or prices",
        description="List what the catalog and the simulator know, as a table (or --json).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=KINDS, help="what to list")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.add_argument("--quiet", "-q", action="store_true", help="names only, one per line")
    p.add_argument("--gpu", help="prices: only rows for this GPU")
    p.add_argument(
        "--section",
        choices=PRICE_SECTIONS,
        default=None,
        help="prices: cloud GPU-hours, hardware purchase or API tokens (default: all)",
    )
    p.set_defaults(func=run)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def gpu_rows() -> list[dict[str, Any]]:
    from simulator.specs.catalog import list_gpus, load_gpu

    rows = []
    for name in list_gpus():
        g = load_gpu(name)
        rows.append(
            {
                "name": name,
                "vendor": g.vendor,
                "memory_gb": g.memory_bytes / 1e9,
                "bf16_tflops": g.flops_for("bf16") / 1e12 if g.peak_flops else None,
                "fp8_tflops": (g.peak_flops.get("fp8") or 0) / 1e12 or None,
                "bandwidth_tb_s": g.memory_bw_bytes_per_s / 1e12,
                "tdp_w": g.tdp_w or None,
                "interconnect": g.interconnect or "-",
            }
        )
    return rows


def model_rows() -> list[dict[str, Any]]:
    from simulator.specs.catalog import list_models, load_model

    rows = []
    for name in list_models():
        m = load_model(name)
        rows.append(
            {
                "name": name,
                "params_b": m.param_count() / 1e9,
                "layers": m.num_layers,
                "hidden": m.hidden_size,
                "heads": m.num_attention_heads,
                "kv_heads": m.num_kv_heads,
                "experts": m.num_experts or None,
                "context": m.max_position_embeddings,
            }
        )
    return rows


def link_rows() -> list[dict[str, Any]]:
    from simulator.specs.catalog import list_links, load_link

    rows = []
    for name in list_links():
        link = load_link(name)
        rows.append(
            {
                "name": name,
                "kind": link.kind,
                "bandwidth_gb_s": link.bandwidth_bytes_per_s / 1e9,
                "latency_us": link.latency_s * 1e6,
            }
        )
    return rows


def policy_rows() -> list[dict[str, Any]]:
    from simulator.policies.base import known_policies, params_model, policy_description

    def params(name: str) -> str:
        return ", ".join(f for f in params_model(name).model_fields if f != "policy") or "-"

    return [
        {
            "name": name,
            "params": params(name),
            "description": _first_line(policy_description(name)),
        }
        for name in known_policies()
    ]


def router_rows() -> list[dict[str, Any]]:
    from simulator.policies.routing import ROUTERS, known_routers

    return [
        {"name": name, "description": _first_line(ROUTERS[name].__doc__)}
        for name in known_routers()
    ]


def profile_rows() -> list[dict[str, Any]]:
    from simulator.costmodel.profiles import list_profiles, load_profile

    return [
        {"name": name, "description": load_profile(name).description} for name in list_profiles()
    ]


def price_rows(section: str | None = None, gpu: str | None = None) -> list[dict[str, Any]]:
    from simulator.specs.prices import load_prices

    prices = load_prices()
    rows: list[dict[str, Any]] = []
    if section in (None, "cloud"):
        for r in prices["cloud_gpu"]:
            if gpu and r["gpu"] != gpu:
                continue
            rows.append(
                {
                    "section": "cloud",
                    "provider": r["provider"],
                    "item": r["instance"],
                    "gpu": r["gpu"],
                    "gpus": r["gpus_per_instance"],
                    "on_demand_usd_h": r.get("on_demand_per_gpu_hour"),
                    "reserved_usd_h": r.get("reserved_per_gpu_hour"),
                    "spot_usd_h": r.get("spot_per_gpu_hour"),
                    "date": r["date"],
                }
            )
    if section in (None, "purchase"):
        for r in prices["hardware_purchase"]:
            if gpu and r["gpu"] != gpu:
                continue
            rows.append(
                {
                    "section": "purchase",
                    "item": r["item"],
                    "kind": r["kind"],
                    "gpu": r["gpu"],
                    "gpus": r["gpus"],
                    "price_usd": r["price_usd"],
                    "date": r["date"],
                }
            )
    if section in (None, "api") and not gpu:
        for r in prices["api"]:
            rows.append(
                {
                    "section": "api",
                    "provider": r["provider"],
                    "item": r["model"],
                    "model": r.get("catalog_model") or "-",
                    "input_usd_mtok": r["input_per_mtok"],
                    "cached_usd_mtok": r.get("cached_input_per_mtok"),
                    "output_usd_mtok": r["output_per_mtok"],
                    "date": r["date"],
                }
            )
    return rows


LISTERS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "gpus": gpu_rows,
    "models": model_rows,
    "links": link_rows,
    "policies": policy_rows,
    "routers": router_rows,
    "profiles": profile_rows,
}


def _print_rows(rows: list[dict[str, Any]], colour: bool) -> None:
    from simulator.reports.terminal import format_table

    if not rows:
        print("(nothing)")
        return
    headers = list(dict.fromkeys(k for r in rows for k in r))
    print(format_table(headers, [[r.get(h) for h in headers] for r in rows], colour=colour))


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UserError
    from simulator.reports.terminal import paint, use_colour

    if args.what != "prices" and (args.gpu or args.section):
        raise UserError("--gpu and --section apply to 'servesim list prices' only")
    if args.what == "prices":
        if args.gpu:
            from simulator.specs.catalog import load_gpu

            args.gpu = load_gpu(args.gpu).name  # unknown names list the known ones
        rows = price_rows(args.section, args.gpu)
    else:
        rows = LISTERS[args.what]()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.quiet:
        for row in rows:
            print(row.get("name") or row.get("item"))
    else:
        colour = use_colour()
        if args.what == "prices":
            if not rows:
                scope = " ".join(
                    f"{flag} {value}"
                    for flag, value in (("--gpu", args.gpu), ("--section", args.section))
                    if value
                )
                print(f"no prices for {scope or 'the catalog'}")
            for section in PRICE_SECTIONS:
                part = [
                    {k: v for k, v in r.items() if k != "section"}
                    for r in rows
                    if r["section"] == section
                ]
                if part:
                    print(paint(f"{section} prices", "cyan", colour))
                    _print_rows(part, colour)
                    print()
            print("sources: servesim list prices --json, or hardware_specs/prices.yaml")
        else:
            _print_rows(rows, colour)
    return 0
