"""Validation suite: the simulator against measurements, written to ``docs/validation.md``.

For every measurement the simulator can express (our own GPU measurements in
``hardware_specs/calibration/measurements/``, the shared H100 file, and the published
numbers of ``shared/reference/published_benchmarks.md``) one row: configuration ->
measured -> predicted -> error, marked ``fit`` when the row informed a parameter and
``held out`` otherwise; rows the simulator cannot express yet are listed with the reason.
Serving-level rows run ``simulator.api`` (``scenario_from_dict``, ``run``); step-level rows
price ``CostModel`` steps. No constant here is tuned to a row: configurations come from
the published text, and assumptions where it is silent are stated in the row.

    python benchmarks/validation.py [-o docs/validation.md] [--shared DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.costmodel.ggml import ggml_format_speed  # noqa: E402
from simulator.costmodel.profiles import load_profile  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validation_engines import NOTE as ENGINES_NOTE  # noqa: E402
from validation_engines import SECTION as ENGINES_SECTION  # noqa: E402
from validation_engines import (  # noqa: E402
    engines_section,
    kernel_table_lines,
    ratio_lines,
    serving_bands,
)
from validation_llamacpp import OWN_SECTIONS as LLAMACPP_SECTIONS  # noqa: E402
from validation_llamacpp import (  # noqa: E402
    fit_format_speeds,
    fit_gguf_parameters,
    llama_cpp_sections,
)
from validation_moe import DEVICE_SECTIONS as MOE_SECTIONS  # noqa: E402
from validation_moe import NOTES as MOE_NOTES  # noqa: E402
from validation_moe import moe_section  # noqa: E402
from validation_rows import FIT, HELD_OUT, Missing, Row  # noqa: E402
from validation_serving import (  # noqa: E402
    SATURATED,
    SERVING_NOTES,
    max_entropy_lengths,
    serving_cases,
    serving_section,
    sustained_output_tok_s,
)
from validation_steps import (  # noqa: E402
    DEVICE_NOTES,
    DEVICE_SECTIONS,
    deepseek_section,
    device_section,
    gpt_fast_section,
    vidur_section,
)

DEFAULT_SHARED = ROOT.parent / "shared"
DEFAULT_OUTPUT = ROOT / "docs" / "validation.md"
#: Names the tests reach through this module.
__all__ = [
    "Row",
    "main",
    "max_entropy_lengths",
    "serving_cases",
    "sustained_output_tok_s",
]


def not_expressible() -> list[Missing]:
    """Published rows outside what the simulator expresses, with the reason."""
    return [
        Missing(
            "H. MLPerf (§2A)",
            "v4.0 H200-CTS (custom thermal solution)",
            "a higher-power H200 variant not in the catalog",
        ),
        Missing(
            "H. MLPerf (§2A)",
            "v5.0 8x H100/H200 Llama-2-70B, Interactive",
            "v5.0 configurations (parallelism, batch) not read in the reference",
        ),
        Missing(
            "H. MLPerf (§2A)",
            "B200 rows (FP4)",
            "FP4 engine configuration not read in the reference",
        ),
        Missing(
            "H. MLPerf (§2C)",
            "Mixtral-8x7B 8x H100/H200 Offline/Server",
            "per-system parallelism and precision not read in the reference",
        ),
        Missing(
            "H. MLPerf (§2C)",
            "Llama-3.1-405B 8x H200/B200",
            "v5.0 configurations not read; long-context input lengths not in the reference",
        ),
        Missing(
            "J. DeepSeek-V3 (§7A)",
            "simulated-MTP and perfect-EPLB rows, TBO ablations",
            "simulated by the authors (MTP acceptance, ideal expert balance), not measured",
        ),
        Missing(
            "J. DeepSeek-V3 (§7B/7C)",
            "GB200 NVL72 rows, Kimi K2 on H200",
            "GB200 not in the catalog; Kimi K2 not in the model catalog",
        ),
        Missing(
            "J. DeepSeek (§6A/6D)",
            "production averages, TensorRT-LLM DeepSeek-R1 8-GPU rows",
            "MTP speculative decoding acceptance and attention-DP not expressible yet",
        ),
        Missing(
            "K. Research systems (§5)",
            "Sarathi-Serve, DistServe, Splitwise capacity ratios",
            "results are ratios read from figures or digests, no absolute configuration",
        ),
    ]


# --- report ------------------------------------------------------------------------------------
SECTION_NOTES = {**DEVICE_NOTES, **SERVING_NOTES}


def _scored(r: Row) -> bool:
    """Latencies of a saturated simulation measure its growing queue, not the model."""
    return not (SATURATED in r.note and r.unit == "ms")


def summarize(rows: list[Row], pred: Callable[[Row], bool]) -> list[tuple[str, int, float, float]]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        if pred(r) and _scored(r):
            groups.setdefault(r.metric, []).append(abs(r.error_pct))
    return [(m, len(v), statistics.median(v), max(v)) for m, v in sorted(groups.items())]


def _fmt(x: float) -> str:
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def render(rows: list[Row], missing: list[Missing]) -> str:
    out = [
        "# Validation: predictions against measurements",
        "",
        "Generated by `python benchmarks/validation.py` from stored inputs (our GPU",
        "measurements in `hardware_specs/calibration/measurements/`, the shared H100 file and",
        "`shared/reference/published_benchmarks.md`); do not edit by hand. Error = predicted /",
        "measured - 1. `fit`: the row informed a parameter; `held out`: it did not.",
        "",
        "## Summary: held-out rows",
        "",
        "| section | metric | n | median abs error | worst abs error |",
        "|---|---|---|---|---|",
    ]
    device = [r for r in rows if r.section[:2] in DEVICE_SECTIONS]
    own_llamacpp = [r for r in rows if r.section in LLAMACPP_SECTIONS]
    published = [r for r in rows if r not in device and r not in own_llamacpp]
    groups = [("device, all (A-D, M)", device)]
    groups += [
        (f"device, {k} {title}", [r for r in device if r.section.startswith(k)])
        for k, title in DEVICE_SECTIONS.items()
    ]
    groups += [
        (f"device, {title}", [r for r in own_llamacpp if r.section == section])
        for section, title in LLAMACPP_SECTIONS.items()
    ]
    groups.append(("published", published))
    for title, group in groups:
        for metric, n, med, worst in summarize(group, lambda r: r.status == HELD_OUT):
            out.append(f"| {title} | {metric} | {n} | {med:.1f} % | {worst:.1f} % |")
    out += ["", "Fitted rows (for reference, not a test of the model):", ""]
    out += ["| metric | n | median abs error | worst abs error |", "|---|---|---|---|"]
    for metric, n, med, worst in summarize(rows, lambda r: r.status == FIT):
        out.append(f"| {metric} | {n} | {med:.1f} % | {worst:.1f} % |")
    out += [
        "",
        "Latencies (TTFT, TPOT) of server rows whose simulated replica saturated are listed",
        "but left out of the summary: they measure a growing queue.",
    ]
    out += engine_summary(rows)
    sections: dict[str, list[Row]] = {}
    for r in rows:
        sections.setdefault(r.section, []).append(r)
    for section, group in sections.items():
        out += ["", f"## {section}", ""]
        if section in SECTION_NOTES:
            out += [SECTION_NOTES[section], ""]
        notes = sorted({r.note for r in group if r.note})
        if len(notes) == 1:
            out += [f"All rows: {notes[0]}.", ""]
        header = "| configuration | metric | measured | predicted | error | set |"
        rule = "|---|---|---|---|---|---|"
        per_row_notes = len(notes) > 1
        out += [
            header + " note |" if per_row_notes else header,
            rule + "---|" if per_row_notes else rule,
        ]
        for r in group:
            line = (
                f"| {r.config} | {r.metric} | {_fmt(r.measured)} {r.unit} | "
                f"{_fmt(r.predicted)} {r.unit} | {r.error_pct:+.1f} % | {r.status} |"
            )
            out.append(line + f" {r.note} |" if per_row_notes else line)
    out += kernel_table_lines(ROOT / "hardware_specs" / "calibration" / "engines")
    out += ["", "## Not expressible yet", "", "| section | measurement | why |", "|---|---|---|"]
    for m in missing:
        out.append(f"| {m.section} | {m.config} | {m.reason} |")
    return "\n".join(out) + "\n"


def engine_of(row: Row) -> str | None:
    """The serving engine a published row measured (None for device measurements)."""
    text = f"{row.section} {row.config}"
    if "vLLM" in text:
        return "vllm"
    if "SGLang" in text or row.section.startswith("J."):
        return "sglang"
    if "llama.cpp" in text:
        return "llama.cpp"
    if row.section.startswith(("H.", "K.")) or "NIM" in text:
        return "trtllm"
    return None


def engine_summary(rows: list[Row]) -> list[str]:
    """Median and worst held-out error of every engine's published throughput rows."""
    out = [
        "",
        "## Summary per engine: published throughput, held out",
        "",
        "Every published serving row is held out; each engine is priced with its own kernel",
        "calibration where one ships for the GPU (the rows' notes say which).",
        "",
        "| engine | metric | n | median abs error | worst abs error |",
        "|---|---|---|---|---|",
    ]
    by_engine: dict[str, list[Row]] = {}
    for r in rows:
        engine = engine_of(r)
        own = r.section[:2] in DEVICE_SECTIONS or r.section in LLAMACPP_SECTIONS
        if engine and r.unit == "tok/s" and not own:
            by_engine.setdefault(engine, []).append(r)
    for engine, group in sorted(by_engine.items()):
        for metric, n, med, worst in summarize(group, lambda r: r.status == HELD_OUT):
            out.append(f"| {engine} | {metric} | {n} | {med:.1f} % | {worst:.1f} % |")
    return out


def collect(
    shared: Path, quick_engines: bool = False, engines: bool = True
) -> tuple[list[Row], list[Missing]]:
    rows = device_section(shared)
    rows += moe_section()
    SECTION_NOTES.update(MOE_NOTES)
    DEVICE_SECTIONS.update(MOE_SECTIONS)
    rows += vidur_section()
    rows += gpt_fast_section()
    cpp_rows, missing, cpp_notes = llama_cpp_sections()
    SECTION_NOTES.update(cpp_notes)
    rows += cpp_rows
    rows += deepseek_section()
    serving_rows, serving_missing = serving_section(serving_cases())
    rows += serving_rows
    if not engines:
        return rows, missing + serving_missing + not_expressible()
    engine_rows, engine_missing, result = engines_section(quick=quick_engines)
    SECTION_NOTES[ENGINES_SECTION] = "\n".join([ENGINES_NOTE, *ratio_lines(result)])
    ENGINE_BANDS[:] = serving_bands(result)
    rows += engine_rows
    return rows, missing + serving_missing + engine_missing + not_expressible()


#: Where the held-out error per metric is written for the simulator to report.
DEFAULT_ERROR_BAND = ROOT / "hardware_specs" / "calibration" / "error_band.yaml"

#: Serving-level bands per GPU and engine from section K (filled by ``collect``).
ENGINE_BANDS: list[dict] = []

#: Metrics whose bands an MoE answer on a reference calibration carries: with the GPU's
#: grouped expert GEMM curve, and without it (expert GEMMs at dense-GEMM efficiency).
MOE_BANDS = {
    "moe_step_time": "MoE step time",
    "moe_step_time_dense_experts": "MoE step time, dense experts",
}


def write_error_band(rows: list[Row], path: Path) -> dict:
    """Held-out median and worst absolute error per metric, as YAML next to the
    calibrations; ``step_time`` is the band every simulation summary carries."""
    metrics = {
        metric: {"rows": n, "median_pct": round(med, 2), "worst_pct": round(worst, 2)}
        for metric, n, med, worst in summarize(rows, lambda r: r.status == HELD_OUT)
    }
    band = {
        "source": "benchmarks/validation.py over held-out rows (docs/validation.md)",
        "step_time": dict(metrics["step time"]),
        "metrics": metrics,
    }
    for key, metric in MOE_BANDS.items():
        if metric in metrics:
            band[key] = {**metrics[metric], "metric": metric}
    if ENGINE_BANDS:
        band["bands"] = list(ENGINE_BANDS)
    # GPUs without a calibration run on datasheet defaults: their band is that of the
    # held-out rows priced so (notes starting "defaults").
    defaults = [
        abs(r.error_pct)
        for r in rows
        if r.status == HELD_OUT and _scored(r) and r.note.startswith("defaults")
    ]
    if defaults:
        band["datasheet"] = {
            "rows": len(defaults),
            "median_pct": round(statistics.median(defaults), 2),
            "worst_pct": round(max(defaults), 2),
            "metric": "kernel time and throughput",
            "source": "held-out rows priced on datasheet defaults (docs/validation.md)",
        }
    path.write_text(yaml.safe_dump(band, sort_keys=False))
    return band


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument(
        "--error-band",
        type=Path,
        default=DEFAULT_ERROR_BAND,
        help="YAML of the held-out error per metric, read by summaries",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="repeat the fits of the llama.cpp profile (GGUF kernel ceilings and format speeds "
        "on our H100 llama-bench rows) and exit",
    )
    parser.add_argument(
        "--quick-engines",
        action="store_true",
        help="only the 1000/1000 and 1024/1024 rows of benchmarks/data (a quick look)",
    )
    parser.add_argument(
        "--no-engines",
        action="store_true",
        help="leave out section K (benchmarks/data, the longest to simulate)",
    )
    args = parser.parse_args(argv)
    if args.fit:
        llamacpp = load_profile("llama.cpp")
        for name, value in fit_gguf_parameters().items():
            print(f"llama.cpp: fitted {name} {value:.3g}, shipped {getattr(llamacpp, name)}")
        for dtype, speed in fit_format_speeds().items():
            print(
                f"ggml format speed {dtype}: fitted {speed:.3f}, shipped {ggml_format_speed(dtype)}"
            )
        return 0
    rows, missing = collect(
        args.shared, quick_engines=args.quick_engines, engines=not args.no_engines
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, missing))
    held = [r for r in rows if r.status == HELD_OUT]
    print(f"wrote {args.output}: {len(rows)} rows ({len(held)} held out), {len(missing)} missing")
    band = write_error_band(rows, args.error_band)
    print(
        f"wrote {args.error_band}: step-time error median {band['step_time']['median_pct']:.1f} %,"
        f" worst {band['step_time']['worst_pct']:.1f} %"
    )
    for metric, n, med, worst in summarize(rows, lambda r: r.status == HELD_OUT):
        print(f"  held out  {metric:<28} n={n:4d}  median {med:6.1f} %  worst {worst:7.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
