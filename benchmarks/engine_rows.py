"""Published engine throughput rows against servesim, as a user would write them.

Every row of ``benchmarks/data/*.yaml`` that carries one (NVIDIA's TensorRT-LLM offline
throughput tables, MoE per-GPU rows) becomes the scenario a user would write for it:

    model: <catalog model>
    hardware: {gpu: <catalog gpu>, tensor_parallel: <tp>[, expert_parallel: <ep>]}
    engine: {profile: trtllm, weight_dtype: fp8 | bf16 | mxfp4, kv_dtype: <same or stated>,
             max_num_seqs / max_num_batched_tokens: what trtllm-bench chose (below)}
    workload: {arrival: {process: offline}, prompt_tokens: fixed isl,
               output_tokens: fixed osl, num_requests: <the publisher's count>}

``num_requests`` is the count the publisher ran for that sequence-length pair (30,000 for
128/128 down to 1,000 for 20000/2000): the first prefills and the last drain are in both
makespans and weigh the same in each, and the counts were chosen by NVIDIA to reach a steady
state (a few thousand times the step time). Offline throughput = output tokens over the
makespan, as ``trtllm-bench throughput`` reports it. The pages pass no batch limits, so
``trtllm-bench`` derived them from the dataset, model and GPUs; the scenario sets the same
(``engine_rows_limits.bench_limits``, transcribed from trtllm-bench's source). These rows are
held out: nothing in servesim is fitted to them.

Reported: per row published vs predicted output tokens/s (whole system; per GPU where the
page gives that), signed error; median and p90 |error| per group (release x dense/MoE); for
the 2024 release the ratios between configurations that differ in one thing (H200 vs H100,
FP8 vs FP16, H100 vs A100, TP doubled), predicted ratio vs published ratio; the rows servesim
refused and why.

    python benchmarks/engine_rows.py [--quick] [--json] [--source trtllm-0.14.0 ...]

``--quick`` keeps one sequence-length pair per configuration (1000/1000, or 1024/1024).
Runtime: all 455 rows about 4.5 minutes (1.8 CPU-minutes) on a shared 2-core machine at load
average 7.5; ``--quick`` (64 rows) about 1.5 minutes there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.engine_rows_limits import bench_limits  # noqa: E402
from simulator import run  # noqa: E402
from simulator.config.loader import scenario_from_dict  # noqa: E402
from simulator.errors import UserError  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
ROW_FILES = ("trtllm_perf_overview.yaml", "moe_serving.yaml")
#: Page precision label -> servesim dtype (FP16 and BF16 move the same bytes and FLOPs).
PRECISION_DTYPE = {"fp8": "fp8", "fp16": "bf16"}
#: Requests where a page lists no count for a pair (1000/1000 on the per-GPU pages: the
#: 1.0 page ran 3,000 for it, as for 1024/1024).
FALLBACK_REQUESTS = 3000
QUICK_PAIRS = ((1000, 1000), (1024, 1024))
#: The release whose configurations that differ in one thing are compared as ratios.
RATIO_SOURCE = "trtllm-0.14.0"
#: CUDA-graph batch sizes of the PyTorch-flow runs (release 1.0 on): every page's
#: ``llm_options.yml`` sets ``cuda_graph_config: {enable_padding: true, batch_sizes: ...}``
#: (perf-overview.md, "Running the Benchmark"). The 2024 engine-flow runs capture none.
PADDED_GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class Row:
    """One published throughput measurement and what its scenario needs."""

    id: str
    source: str
    release: str
    model: str
    moe: bool
    gpu: str
    tp: int
    ep: int
    precision: str
    weight_dtype: str
    kv_dtype: str
    isl: int
    osl: int
    #: Published output tokens/s of the whole system (per-GPU numbers times the GPUs).
    published_tok_s: float
    #: True where the page publishes per-GPU throughput (errors are the same either way).
    per_gpu: bool
    num_requests: int
    note: str = ""

    @property
    def gpus(self) -> int:
        return self.tp * self.ep

    @property
    def group(self) -> str:
        return f"{self.release} {'MoE' if self.moe else 'dense'}"


def _row(source: str, meta: dict[str, Any], raw: dict[str, Any]) -> Row:
    isl, osl = int(raw["isl"]), int(raw["osl"])
    counts = meta.get("num_requests", {})
    count = counts.get(f"{isl}/{osl}")
    notes = []
    if raw.get("revision"):
        notes.append(f"only in page revision {raw['revision']}")
    if count is None:
        count = FALLBACK_REQUESTS
        notes.append(f"request count not listed, {count} assumed")
    tp, ep = int(raw["tp"]), int(raw.get("ep", 1))
    if "output_tok_s_per_gpu" in raw:
        published, per_gpu = float(raw["output_tok_s_per_gpu"]) * tp * ep, True
        weight, kv = raw["weight_dtype"], raw["kv_dtype"]
        precision = str(raw["precision_label"]).lower()
        label = raw["parallel"]
    else:
        published, per_gpu = float(raw["output_tok_s"]), False
        precision = raw["precision"]
        weight = kv = PRECISION_DTYPE[precision]
        label = raw.get("parallel", f"TP{tp}")
    release = str(meta.get("release", source)).split()[0]
    row_id = f"{release} {raw['model']} {raw['gpu']} {label} {precision} {isl}/{osl}"
    moe = bool(raw.get("moe", True))  # the MoE file's rows carry no flag: all are MoE
    return Row(
        row_id, source, release, raw["model"], moe, raw["gpu"], tp, ep, precision, weight, kv,
        isl, osl, published, per_gpu, int(count), "; ".join(notes),
    )  # fmt: skip


def load_rows(
    paths: Iterable[Path] | None = None, sources: Iterable[str] | None = None
) -> list[Row]:
    """Every row of the held-out data files (``benchmarks/data``), optionally of some sources."""
    wanted = set(sources) if sources else None
    rows = []
    for path in paths or [DATA / name for name in ROW_FILES]:
        data = yaml.safe_load(Path(path).read_text())
        for raw in data["rows"]:
            if wanted is None or raw["source"] in wanted:
                rows.append(_row(raw["source"], data["sources"][raw["source"]], raw))
    return rows


def scenario_for(row: Row) -> dict[str, Any]:
    """The scenario a user would write for ``row`` (a plain mapping for ``scenario_from_dict``),
    with the batch limits trtllm-bench chose for the run (``engine_rows_limits``; each of the
    ``ep`` attention-data-parallel ranks schedules under its own) and, from release 1.0 on,
    the CUDA-graph batch sizes its decode steps are padded to; release 0.14 ran with chunked
    context on."""
    hardware: dict[str, Any] = {"gpu": row.gpu, "tensor_parallel": row.tp}
    if row.ep > 1:
        hardware["expert_parallel"] = row.ep
    batch, tokens = bench_limits(row)
    engine: dict[str, Any] = {
        "profile": "trtllm",
        "weight_dtype": row.weight_dtype,
        "kv_dtype": row.kv_dtype,
        "max_num_seqs": batch * row.ep,
        "max_num_batched_tokens": tokens * row.ep,
    }
    if row.release != "0.14.0":
        engine["cuda_graph_batch_sizes"] = list(PADDED_GRAPH_BATCH_SIZES)
    else:
        # trtllm-bench of the TensorRT engine flow enabled chunked context
        # (bench/run/dataclasses.py ExecutorSettingsConfig.chunking = True); the PyTorch
        # flow leaves it off, the profile's default
        engine["batching"] = "chunked"
    return {
        "name": row.id,
        "model": row.model,
        "hardware": hardware,
        "engine": engine,
        "workload": {
            "arrival": {"process": "offline"},
            "prompt_tokens": {"distribution": "fixed", "value": row.isl},
            "output_tokens": {"distribution": "fixed", "value": row.osl},
            "num_requests": row.num_requests,
        },
    }


def simulate(row: Row) -> dict[str, Any]:
    """Run one row: ``{"predicted_tok_s", "error_pct"}``, or ``{"refused": reason}``."""
    try:
        summary = run(scenario_from_dict(scenario_for(row))).summary_obj
    except UserError as exc:
        return {"refused": str(exc).replace("\n", "; ")}
    if summary.requests_rejected:
        reasons = ", ".join(f"{n} x {why}" for why, n in summary.rejections.items())
        return {"refused": f"{summary.requests_rejected} requests rejected ({reasons})"}
    predicted = summary.output_tokens_per_s
    return {"predicted_tok_s": predicted, "error_pct": (predicted / row.published_tok_s - 1) * 100}


def _abs_stats(errors: list[float]) -> dict[str, float | int]:
    values = np.abs(np.asarray(errors, dtype=float))
    if not len(values):
        return {"rows": 0}
    return {
        "rows": len(values),
        "median_abs_pct": float(np.median(values)),
        "p90_abs_pct": float(np.percentile(values, 90)),
        "median_signed_pct": float(np.median(errors)),
    }


def ratio_checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Predicted vs published ratio of every pair of 2024-release rows that differ in one
    thing: H200 vs H100 (FP8), FP8 vs FP16 (H100), H100 vs A100-SXM (FP16), TP doubled."""
    by_key = {
        (r["model"], r["gpu"], r["precision"], r["tp"], r["isl"], r["osl"]): r
        for r in results
        if r["source"] == RATIO_SOURCE and "predicted_tok_s" in r
    }
    pairs = []
    for (model, gpu, prec, tp, isl, osl), row in by_key.items():
        rest = (isl, osl)
        candidates = [("TP doubled", (model, gpu, prec, tp // 2, *rest))] if tp > 1 else []
        if gpu == "h200" and prec == "fp8":
            candidates.append(("H200 vs H100", (model, "h100-sxm", "fp8", tp, *rest)))
        if gpu == "h100-sxm" and prec == "fp8":
            candidates.append(("FP8 vs FP16", (model, "h100-sxm", "fp16", tp, *rest)))
        if gpu == "h100-sxm" and prec == "fp16":
            candidates.append(("H100 vs A100", (model, "a100-sxm-80gb", "fp16", tp, *rest)))
        for kind, other_key in candidates:
            other = by_key.get(other_key)
            if other is None:
                continue
            published = row["published_tok_s"] / other["published_tok_s"]
            predicted = row["predicted_tok_s"] / other["predicted_tok_s"]
            pairs.append(
                {
                    "kind": kind,
                    "rows": [row["id"], other["id"]],
                    "published_ratio": published,
                    "predicted_ratio": predicted,
                    "error_pct": (predicted / published - 1) * 100,
                }
            )
    return pairs


def evaluate(rows: list[Row], progress: bool = False) -> dict[str, Any]:
    """Simulate every row; per-row results, per-group error statistics, ratio checks and
    refusals. ``progress`` prints one line per row to stderr."""
    started = time.perf_counter()
    results = []
    for i, row in enumerate(rows, 1):
        result = {**asdict(row), "id": row.id, "group": row.group, **simulate(row)}
        results.append(result)
        if progress:
            shown = f"{result['error_pct']:+.1f} %" if "error_pct" in result else "refused"
            print(f"[{i}/{len(rows)}] {row.id}: {shown}", file=sys.stderr, flush=True)
    groups: dict[str, list[float]] = {}
    by_gpu: dict[str, list[float]] = {}
    for r in results:
        if "error_pct" in r:
            groups.setdefault(r["group"], []).append(r["error_pct"])
            by_gpu.setdefault(f"{r['group']} {r['gpu']}", []).append(r["error_pct"])
    pairs = ratio_checks(results)
    kinds: dict[str, list[float]] = {}
    for p in pairs:
        kinds.setdefault(p["kind"], []).append(p["error_pct"])
    kinds["all"] = [p["error_pct"] for p in pairs]
    return {
        "rows": results,
        "groups": {name: _abs_stats(errs) for name, errs in sorted(groups.items())},
        "gpu_groups": {name: _abs_stats(errs) for name, errs in sorted(by_gpu.items())},
        "ratios": pairs,
        "ratio_groups": {kind: _abs_stats(errs) for kind, errs in kinds.items()},
        "refused": [{"id": r["id"], "reason": r["refused"]} for r in results if "refused" in r],
        "runtime_s": time.perf_counter() - started,
    }


def _stats_line(name: str, stats: dict[str, Any], width: int = 22) -> str:
    if not stats["rows"]:
        return f"  {name:<{width}} no rows simulated"
    return (
        f"  {name:<{width}} {stats['rows']:>4} rows  median |err| {stats['median_abs_pct']:5.1f} %"
        f"  p90 {stats['p90_abs_pct']:5.1f} %  (median signed {stats['median_signed_pct']:+.1f} %)"
    )


def report(result: dict[str, Any]) -> str:
    """The evaluation as plain text."""
    out = ["published vs predicted output tokens/s (whole system)", ""]
    for r in result["rows"]:
        if "error_pct" in r:
            out.append(
                f"  {r['id']:<58} {r['published_tok_s']:>10,.0f} {r['predicted_tok_s']:>10,.0f}"
                f" {r['error_pct']:+7.1f} %" + (f"  ({r['note']})" if r["note"] else "")
            )
    out += ["", "error per group (release x dense/MoE)"]
    out += [_stats_line(name, stats) for name, stats in result["groups"].items()]
    out += ["", "error per group and GPU"]
    out += [_stats_line(name, stats, 32) for name, stats in result["gpu_groups"].items()]
    out += ["", f"ratio check ({RATIO_SOURCE}: predicted ratio / published ratio - 1)"]
    out += [_stats_line(kind, stats) for kind, stats in result["ratio_groups"].items()]
    out += ["", f"refused ({len(result['refused'])} rows)"]
    configs: dict[str, list[dict[str, Any]]] = {}
    for r in result["refused"]:
        configs.setdefault(r["id"].rsplit(" ", 1)[0], []).append(r)
    for config, refused in configs.items():
        out.append(f"  {config} ({len(refused)} length pairs): {refused[0]['reason']}")
    out += ["", f"runtime {result['runtime_s']:.0f} s"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quick", action="store_true", help="one length pair per configuration")
    parser.add_argument("--source", nargs="*", help="only these sources (keys of the data files)")
    parser.add_argument("--progress", action="store_true", help="one line per row on stderr")
    args = parser.parse_args(argv)
    rows = load_rows(sources=args.source)
    if args.quick:
        rows = [r for r in rows if (r.isl, r.osl) in QUICK_PAIRS]
    result = evaluate(rows, progress=args.progress)
    print(json.dumps(result, indent=1) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
