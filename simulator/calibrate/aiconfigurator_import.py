"""Write engine calibrations from AIConfigurator's tables: one YAML file per (GPU, engine,
engine version), ``<out>/<engine>/<gpu>/<version>.yaml`` (the layout
``costmodel/pricing.py`` reads). See ``aiconfigurator.py`` for what is fitted and how."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simulator.calibrate import aiconfigurator as fit
from simulator.calibrate.aiconfigurator_moe import fit_moe_measured
from simulator.calibrate.aiconfigurator_tables import (
    ENGINES,
    PACKAGE,
    SYSTEM_GPUS,
    Table,
    engine_versions,
    licence_notice,
    package_root,
    package_version,
    read_nccl,
    read_table,
    system_gpu,
    table_versions,
    version_for,
)
from simulator.costmodel.kernels import ENGINE_CALIBRATION_FORMAT, moe_section
from simulator.errors import UserError
from simulator.specs.catalog import load_gpu


def _tables(root: Path, system: str, engine: str, version: str) -> dict[str, Table]:
    tables = {}
    for kind in ("gemm", "context_attention", "generation_attention", "moe", "custom_allreduce"):
        chosen = version_for(root, system, kind, engine, version)
        if chosen is not None:
            tables[kind] = read_table(root, system, kind, engine, chosen)
    # Quantisation kernels only from the GEMM table's own collection: they are subtracted
    # from its FP8 rows (``fit.static_fp8_rows``).
    gemm_version = tables["gemm"].version if "gemm" in tables else None
    for kind in ("compute_scale", "scale_matrix"):
        if gemm_version in table_versions(root, system, kind, engine):
            tables[kind] = read_table(root, system, kind, engine, gemm_version)
    return tables


def build(
    system: str, engine: str, version: str | None = None, root: Path | None = None
) -> dict[str, Any]:
    """The calibration document of ``engine`` (``version``, default the newest with a GEMM
    table) on ``system``; ``root``: a ``systems`` folder other than the installed one."""
    root = root or package_root()
    gpu_name = system_gpu(system)
    if engine not in ENGINES:
        raise UserError(f"--engine: {engine!r}; known: {', '.join(ENGINES)}")
    versions = engine_versions(root, system, engine)
    if not versions:
        raise UserError(f"--from-aiconfigurator: no {engine} GEMM table for {system}")
    version = version or versions[-1]
    if version not in versions:
        raise UserError(f"--version: {version!r}; {engine} on {system} has {', '.join(versions)}")
    gpu = load_gpu(gpu_name)
    tables = _tables(root, system, engine, version)
    doc: dict[str, Any] = {
        "format": ENGINE_CALIBRATION_FORMAT,
        "engine": engine,
        "version": version,
        "gpu": gpu_name,
    }
    errors: dict[str, Any] = {}
    sections = (
        ("gemm", "gemm", fit.fit_gemm),
        ("attention_prefill", "context_attention", fit.fit_prefill),
        ("attention_decode", "generation_attention", fit.fit_decode),
    )
    quantize = (tables.get("compute_scale"), tables.get("scale_matrix"))
    for section, kind, fitter in sections:
        if kind in tables:
            extra = {"quantize": quantize} if kind == "gemm" else {}
            grids, errors[section] = fitter(tables[kind], gpu, **extra)
            doc[section] = {k: g.to_dict() for k, g in grids.items()}
    if "moe" in tables:
        curves, grids, errors["moe_grouped_gemm"] = fit.fit_moe(tables["moe"], gpu)
        doc["moe_grouped_gemm"] = moe_section(curves, _source_line(engine, tables["moe"]))
        doc["moe_grouped_gemm_grid"] = {k: g.to_dict() for k, g in grids.items()}
        measured, errors["moe_measured"] = fit_moe_measured(tables["moe"])
        if measured:
            source = _source_line(engine, tables["moe"]).replace(
                "fused MoE latency over the dtype's peak FLOP/s",
                "fused MoE seconds per layer by tokens, per measured expert shape and layout",
            )
            doc["moe_measured"] = {"source": source, **measured}
    if "custom_allreduce" in tables:
        grid, errors["allreduce"] = fit.fit_allreduce(tables["custom_allreduce"])
        doc["allreduce"] = grid.to_dict("latency_s")
    nccl = read_nccl(root, system)
    if nccl is not None:
        tables["nccl"] = nccl
        grids, errors["nccl"] = fit.fit_nccl(nccl)
        doc["nccl"] = {op: g.to_dict("latency_s") for op, g in grids.items()}
    doc = {**doc, "metadata": _metadata(root, system, engine, version, gpu, tables, errors)}
    # metadata first in the file, after the identity
    order = ("format", "engine", "version", "gpu", "metadata")
    return {k: doc[k] for k in order} | {k: v for k, v in doc.items() if k not in order}


def _source_line(engine: str, table: Table) -> str:
    return (
        f"{PACKAGE} {package_version()} {table.path.name} of {engine} {table.version} "
        f"({table.frame.device.iloc[0]}); fused MoE latency over the dtype's peak FLOP/s"
    )


def _metadata(root, system, engine, version, gpu, tables, errors) -> dict[str, Any]:
    device = next(iter(tables.values())).frame.device.iloc[0] if tables else ""
    peaks = {d: gpu.peak_flops[d] for d in ("bf16", "fp8", "fp4") if d in gpu.peak_flops}
    return {
        "summary": f"{engine} {version} kernels on {device} measured by NVIDIA AIConfigurator "
        f"({PACKAGE} {package_version()})",
        "written_by": f"servesim calibrate --from-aiconfigurator {system} --engine {engine} "
        f"--version {version}",
        "source": {
            "package": PACKAGE,
            "package_version": package_version(),
            "system": system,
            "device": str(device),
            "tables": {k: t.provenance(root) for k, t in tables.items()},
        },
        "notice": licence_notice(),
        "split": "rows whose shape key has a CRC-32 divisible by 4 are held out (a quarter "
        "of the shapes); the rest are fitted. Errors: |predicted / measured - 1| of kernel "
        "time, in %",
        "peak_flops": peaks,
        "memory_bw_bytes_per_s": gpu.memory_bw_bytes_per_s,
        "errors": errors,
    }


def write(doc: dict[str, Any], path: Path) -> Path:
    """Write one calibration document (grids in flow style, one row per line), whole: to a
    temporary name beside ``path``, renamed into place when complete."""
    from simulator.cli.outputs import write_atomic

    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)
    return write_atomic(path, lambda temporary: temporary.write_text(text), "-o")


def write_all(
    out_dir: Path,
    systems: list[str],
    engines: list[str],
    all_versions: bool,
    root: Path | None = None,
) -> list:
    """Write every (system, engine, version) calibration under ``out_dir``; returns
    (path, document) pairs. ``root``: a ``systems`` folder other than the installed one."""
    root = root or package_root()
    written = []
    for system in systems:
        for engine in engines:
            versions = engine_versions(root, system, engine)
            for version in versions if all_versions else versions[-1:]:
                doc = build(system, engine, version, root=root)
                path = out_dir / engine / doc["gpu"] / f"{version}.yaml"
                written.append((write(doc, path), doc))
    if not written:
        raise UserError(
            f"--from-aiconfigurator: no {', '.join(engines)} GEMM table for "
            f"{', '.join(systems)}; nothing written"
        )
    return written


def expand(system: str, engine: str) -> tuple[list[str], list[str]]:
    """``all`` expanded to every system / engine; unknown names are refused."""
    import difflib

    known = ", ".join(sorted(SYSTEM_GPUS))
    if not system.strip():
        raise UserError(f"--from-aiconfigurator needs a system name: one of {known}, or all")
    if system != "all" and system not in SYSTEM_GPUS:
        close = difflib.get_close_matches(system, sorted(SYSTEM_GPUS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(
            f"--from-aiconfigurator: unknown system {system!r}{hint}; known: {known}, or all"
        )
    if engine != "all" and engine not in ENGINES:
        raise UserError(f"--engine: unknown engine {engine!r}; known: {', '.join(ENGINES)}, all")
    systems = sorted(SYSTEM_GPUS) if system == "all" else [system]
    engines = list(ENGINES) if engine == "all" else [engine]
    return systems, engines
