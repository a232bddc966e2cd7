"""``servesim calibrate`` (also ``python -m simulator.calibrate``): measure this GPU, or fit
cost-model parameters to measurements and write them as YAML."""

from __future__ import annotations

import argparse
import os
import platform
import stat
from importlib import metadata as importlib_metadata
from pathlib import Path

from simulator.errors import UserError

DESCRIPTION = (
    "--measure: time GEMMs, attention, copies, kernel launches and whole graphed "
    "steps of a Llama-shaped model on this GPU (PyTorch needed: pip install "
    "'servesim[torch]'), and all-reduce when run under torchrun on several GPUs; "
    "writes JSON lines. --from: fit CostParams (GEMM efficiency and shape "
    "dependence, bandwidth efficiency, kernel latency, step overhead, attention "
    "efficiencies, eager launch overhead, all-reduce latency and bandwidth) to "
    "JSON-lines measurements, and write a calibration YAML that `servesim step "
    "--calibration` and scenarios read."
)
EXAMPLES = (
    "examples:\n"
    "  servesim calibrate --measure --quick -o my-gpu.jsonl\n"
    "  torchrun --nproc-per-node 2 $(which servesim) calibrate --measure "
    "-o allreduce.jsonl\n"
    "  servesim calibrate --from my-gpu.jsonl -o my-gpu.yaml\n"
    "  servesim calibrate --from ../shared/calibration/h100_sxm_microbench.jsonl "
    "-o h100.yaml\n"
    "  servesim calibrate --from h100.jsonl --from h200x2_allreduce.jsonl -o out.yaml "
    "--holdout kind=mixed --holdout kind=decode,batch=512"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """The ``calibrate`` command of ``servesim``."""
    p = subparsers.add_parser(
        "calibrate",
        help="measure this GPU (--measure) or fit cost-model efficiencies to measurements",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``calibrate`` (``--measure`` or ``--from``), dispatching to ``run``."""
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="FILE",
        help="JSON-lines measurements to fit (repeatable)",
    )
    what.add_argument(
        "--measure",
        action="store_true",
        help="run the microbenchmarks on this machine's GPU and write JSON lines to -o",
    )
    what.add_argument(
        "--from-aiconfigurator",
        dest="aiconfigurator",
        metavar="SYSTEM",
        help="write an engine calibration from NVIDIA AIConfigurator's measured kernel "
        "tables for SYSTEM (h100_sxm, h200_sxm, a100_sxm, b200_sxm, b300_sxm, gb200, gb300, "
        "l40s, rtx_pro_6000_server, or all); needs pip install 'servesim[engines]'",
    )
    p.add_argument(
        "--engine",
        default="all",
        help="--from-aiconfigurator: trtllm, vllm, sglang or all (default all)",
    )
    p.add_argument(
        "--version",
        help="--from-aiconfigurator: engine version (default the newest; 'all' for every "
        "version with a GEMM table)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="calibration YAML to write (JSON lines: --measure; a folder for "
        "--from-aiconfigurator, written as FOLDER/<engine>/<gpu>/<version>.yaml)",
    )
    _measure_arguments(p)
    _fit_arguments(p)
    p.set_defaults(func=run)


def _measure_arguments(p: argparse.ArgumentParser) -> None:
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="--measure: fewer shapes (under 2 min on an H100)"
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="--measure: tiny shapes that run on a CPU in seconds (tests the script)",
    )
    p.add_argument(
        "--models",
        help="--measure: comma-separated catalog models whose GEMM shapes are timed",
    )
    p.add_argument(
        "--step-models",
        help="--measure: comma-separated dense catalog models whose whole steps are timed "
        "(default llama-3.2-1b,llama-3.1-8b)",
    )
    p.add_argument("--device", help="--measure: torch device (default cuda, else cpu)")
    p.add_argument(
        "--only",
        choices=("moe",),
        help="--measure: only the MoE benchmarks (grouped expert GEMMs, MoE steps)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        help="--measure: stop starting new shapes after this many seconds "
        "(default 480 full, 100 quick, plus 420 and 120 for the MoE part)",
    )


def _fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--holdout",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="rows matching are not fitted, only scored (repeatable)",
    )
    p.add_argument(
        "--gpu",
        help="catalog GPU the measurements were taken on (default: from the file's env row)",
    )
    p.add_argument("--link", help="link of the all-reduce rows (default: the GPU's interconnect)")
    p.add_argument("--note", help="free text stored in the file's metadata (what was measured)")
    p.add_argument("--quiet", action="store_true", help="print no per-kind error table")


#: Fields of ``env`` rows copied into a calibration file's metadata (where and with what).
ENV_KEYS = ("gpu", "mem", "sms", "driver", "torch", "cuda", "python", "measured_utc", "size", "tp")


def _env_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["kind"] == "env"]


def _names(text: str | None, option: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise UserError(f"{option}: {text!r} names no model")
    from simulator.specs.catalog import load_model

    for name in names:
        try:
            load_model(name)  # unknown names fail here, listing the known ones
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None
    return names


def run(args: argparse.Namespace) -> int:
    if not args.output.strip():
        raise UserError("-o: empty; give the file (or, for --from-aiconfigurator, folder) to write")
    if args.measure:
        return run_measure(args)
    if args.aiconfigurator is not None:
        return run_aiconfigurator(args)
    if args.quick or args.smoke or args.models or args.step_models or args.device or args.only:
        raise UserError("--quick/--smoke/--models/--step-models/--device/--only go with --measure")
    return run_fit(args)


def _parent_folder(path: Path) -> None:
    """The folder that would hold ``path`` must exist (calibrate creates no missing folders
    above its output)."""
    from simulator.specs.files import shown

    parent = path.parent
    try:
        mode = os.stat(parent).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(
            f"-o {shown(path)}: folder {shown(parent)} does not exist; create it first"
        ) from None
    except OSError as exc:
        message = f"-o {shown(path)}: cannot use folder {shown(parent)} ({exc.strerror})"
        raise UserError(message) from None
    if not stat.S_ISDIR(mode):
        raise UserError(f"-o {shown(path)}: {shown(parent)} is a file, not a folder")


def output_file(text: str) -> Path:
    """``-o`` as a file to (over)write, checked before any work: a regular file or a new
    name in an existing folder that can be written in."""
    from simulator.cli.outputs import check_output_file

    path = Path(text)
    _parent_folder(path)
    return check_output_file(path, "-o", force=True)


def output_folder(text: str, names: tuple[str, ...]) -> Path:
    """``-o`` as a folder that receives ``names`` (sub-folders or files), checked before any
    work: an existing folder that can be written in, or a new one in such a folder."""
    from simulator.cli.outputs import check_output_folder

    path = Path(text)
    _parent_folder(path)
    return check_output_folder(path, "-o", names, force=True)


def run_measure(args: argparse.Namespace) -> int:
    from simulator.calibrate.run import measure

    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    step_models = _names(args.step_models, "--step-models")
    if step_models:
        from simulator.specs.catalog import load_model

        for name in step_models:
            spec = load_model(name)
            if spec.is_moe or spec.uses_mla or not spec.gated_mlp:
                raise UserError(
                    f"--step-models: {name!r} is not a dense gated-MLP model with grouped-query "
                    "attention; whole steps are timed for Llama-shaped models only"
                )
    output = output_file(args.output)
    measure(
        output,
        size=size,
        gemm_models=_names(args.models, "--models"),
        step_models=step_models,
        device_name=args.device,
        budget_s=args.budget_s,
        only=args.only,
    )
    return 0


def run_aiconfigurator(args: argparse.Namespace) -> int:
    """Engine calibrations from AIConfigurator's tables, one file per (GPU, engine, version)."""
    from simulator.calibrate.aiconfigurator_import import build, expand, write, write_all

    systems, engines = expand(args.aiconfigurator, args.engine)
    one = len(systems) == 1 and len(engines) == 1
    if not one and args.version not in (None, "all"):
        raise UserError("--version: name one engine and one system with a version")
    if args.version is not None and not args.version.strip():
        raise UserError("--version: empty; give an engine version, or all")
    out = output_folder(args.output, tuple(engines))
    if one and args.version != "all":
        doc = build(systems[0], engines[0], args.version)
        path = out / engines[0] / doc["gpu"] / f"{doc['version']}.yaml"
        written = [(write(doc, path), doc)]
    else:
        written = write_all(out, systems, engines, all_versions=args.version == "all")
    if not args.quiet:
        for path, doc in written:
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
            _print_errors(doc["metadata"]["errors"])
    return 0


def _print_errors(errors: dict) -> None:
    """Held-out error of every fitted table: median / 90th percentile / worst (%)."""
    for section, entry in errors.items():
        stats = {"": entry} if "held_out" in entry else entry
        for dtype, s in stats.items():
            # measured MoE curves report per routing: {routing: {held_out_points: ...}}
            parts = (
                {"": s}
                if "held_out" in s
                else {
                    r: {"held_out": v["held_out_points"]}
                    for r, v in s.items()
                    if isinstance(v, dict)
                }
            )
            for routing, part in parts.items():
                h = part["held_out"]
                if h.get("n"):
                    print(
                        f"  {section:<18}{(dtype + ' ' + routing).strip():<25} held out "
                        f"n={h['n']:<6} median {h['median_abs_pct']:5.1f} %  "
                        f"p90 {h['p90_abs_pct']:5.1f} %"
                    )


def run_fit(args: argparse.Namespace) -> int:
    from simulator.costmodel.calibration import (
        ATTENTION_KINDS,
        STEP_KINDS,
        fit,
        load_rows,
        parse_holdout,
    )

    output = output_file(args.output)
    if any(_same_file(source, output) for source in args.sources):
        raise UserError(
            f"-o {args.output!r} is also a --from file; write the calibration to another file"
        )
    predicates = [parse_holdout(h) for h in args.holdout]
    per_file = [(src, load_rows(src)) for src in args.sources]
    rows = [r for _, rs in per_file for r in rs]
    timed_kinds = ("gemm", "allreduce", *STEP_KINDS, *ATTENTION_KINDS)
    timed = [r for r in rows if r["kind"] in timed_kinds]
    if not timed and any(r["kind"] == "grouped_gemm" for r in rows):
        return run_moe_fit(args, per_file, output)
    if not timed:
        raise UserError(
            "--from: no gemm, attn_prefill, attn_decode, prefill, decode, mixed, allreduce or "
            f"grouped_gemm rows in {', '.join(args.sources)}"
        )
    device_names = {src: [e.get("gpu", "") for e in _env_rows(rs)] for src, rs in per_file}
    gpu = _measured_gpu(args.gpu, per_file, device_names)
    link = _allreduce_link(args.link, per_file, device_names, gpu)

    models = _row_models(rows, (*STEP_KINDS, *ATTENTION_KINDS))
    holdout = (lambda row: any(p(row) for p in predicates)) if predicates else None
    fitted_rows = [r for r in timed if holdout is None or not holdout(r)]
    _check_fittable(timed, fitted_rows, args.holdout, link is not None)
    result = fit(rows, models=models, gpu=gpu, link=link, holdout=holdout)

    fitted = result.summary(held_out=False)
    held = result.summary(held_out=True)
    metadata = {
        "note": args.note or "",
        "sources": [str(Path(s)) for s in args.sources],
        "gpu": gpu.name,
        "devices": device_names,
        "measured_with": [{k: e.get(k) for k in ENV_KEYS if k in e} for e in _env_rows(rows)],
        "link": link.name if link else None,
        "models": sorted(models),
        "holdout": list(args.holdout),
        "fitted_parameters": list(result.fitted_names),
        "gemm_call_overhead_s": result.gemm_call_overhead_s,
        "error_fitted_rows": fitted,
        "error_held_out_rows": held,
        "software": {
            "servesim": _version("servesim"),
            "numpy": _version("numpy"),
            "scipy": _version("scipy"),
            "python": platform.python_version(),
        },
    }
    write_calibration(output, result.params, result.fitted_names, metadata)
    if not args.quiet:
        held_count = len(timed) - len(fitted_rows)
        print(
            f"calibrated {gpu.name} from {len(timed)} timed rows ({len(fitted_rows)} fitted, "
            f"{held_count} held out); wrote {args.output}"
        )
        _print_fit(result, fitted, held)
    return 0


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _row_models(rows: list[dict], kinds: tuple[str, ...]) -> dict:
    """The catalog model of every model named by rows of ``kinds``."""
    from simulator.specs.catalog import load_model

    models = {}
    for row in rows:
        if row["kind"] in kinds and row["model"] not in models:
            try:
                models[row["model"]] = load_model(row["model"])
            except UserError as exc:
                where = f"--from {row['_source']} line {row['_line']}"
                raise UserError(f"{where}: {row['kind']} row 'model': {exc}") from None
    return models


def _check_fittable(
    timed: list[dict], fitted_rows: list[dict], holdout: list[str], has_link: bool
) -> None:
    """Refuse a fit with no rows left after ``--holdout``, or fewer measurements than the
    parameters they inform."""
    from simulator.costmodel.calibration import STEP_KINDS, fitted_names

    if not fitted_rows:
        raise UserError(
            f"--holdout {' '.join(holdout)}: holds out all {len(timed)} timed rows; nothing is "
            "left to fit (hold fewer rows out)"
        )
    names = fitted_names(fitted_rows, {r["kind"] for r in fitted_rows}, has_link)
    if any(r["kind"] == "gemm" and not r.get("graph") for r in fitted_rows):
        names.append("the per-call overhead of standalone GEMM timings")
    measured = sum(2 if r["kind"] in STEP_KINDS and r.get("eager_ms") else 1 for r in fitted_rows)
    if measured < len(names):
        raise UserError(
            f"--from: {measured} timed measurement{'s' if measured != 1 else ''} left to fit "
            f"cannot determine the {len(names)} parameters "
            f"{'it informs' if measured == 1 else 'they inform'} ({', '.join(names)}); "
            "measure more shapes" + (" or hold fewer rows out" if holdout else "")
        )


def run_moe_fit(args: argparse.Namespace, per_file: list, output: Path) -> int:
    """Fit the grouped expert GEMM curve of MoE measurements and write it as its own file."""
    import yaml

    from simulator.calibrate.moe_fit import curve_document
    from simulator.cli.outputs import write_atomic
    from simulator.costmodel.params import _plain

    if args.holdout:
        raise UserError(
            "--holdout: a grouped GEMM curve fit (files with grouped_gemm rows and no gemm, "
            "step or allreduce rows) holds no rows out; drop --holdout"
        )
    device_names = {src: [e.get("gpu", "") for e in _env_rows(rs)] for src, rs in per_file}
    gpu = _measured_gpu(args.gpu, per_file, device_names)
    rows = [r for _, rs in per_file for r in rs]
    doc = curve_document(rows, [str(Path(s)) for s in args.sources], gpu, args.note or "")
    text = yaml.safe_dump(_plain(doc), sort_keys=False)
    write_atomic(output, lambda tmp: tmp.write_text(text), "-o")
    if not args.quiet:
        print(f"fitted the grouped expert GEMM curve of {gpu.name}; wrote {args.output}")
        for kind, s in doc["metadata"]["error_fitted_rows"].items():
            print(f"  {kind:<20}{s['n']:>5}{s['median_abs_pct']:>9.1f}{s['max_abs_pct']:>9.1f}")
    return 0


def _measured_gpu(name: str | None, per_file: list, device_names: dict):
    """The catalog GPU measured: ``--gpu``, else the env row of the first file holding GEMM
    or step rows."""
    from simulator.costmodel.calibration import STEP_KINDS, catalog_gpu_name
    from simulator.specs.catalog import load_gpu

    if name is None:
        main_src = next(
            (src for src, rs in per_file if any(r["kind"] in ("gemm", *STEP_KINDS) for r in rs)),
            per_file[0][0],
        )
        names = device_names.get(main_src) or []
        name = catalog_gpu_name(names[0]) if names else None
        if name is None:
            raise UserError(
                f"--gpu: cannot tell the catalog GPU of {main_src} (env gpu "
                f"{names[0] if names else 'missing'!r}); pass --gpu NAME"
            )
    return load_gpu(name)


def _allreduce_link(name: str | None, per_file: list, device_names: dict, gpu):
    """The link of the all-reduce rows (None without any): ``--link``, else the
    interconnect of the GPU they were measured on."""
    from simulator.costmodel.calibration import catalog_gpu_name
    from simulator.specs.catalog import load_gpu, load_link

    sources = [src for src, rs in per_file if any(r["kind"] == "allreduce" for r in rs)]
    if not sources:
        return None
    if name is None:
        ar_device = (device_names.get(sources[0]) or [""])[0]
        ar_gpu = catalog_gpu_name(ar_device) if ar_device else None
        name = load_gpu(ar_gpu).interconnect if ar_gpu else gpu.interconnect
    if not name or name == "none":
        raise UserError("--link: the all-reduce rows need a link; pass --link NAME")
    return load_link(name)


def _print_fit(result, fitted: dict, held: dict) -> None:
    for name in result.fitted_names:
        print(f"  {name:<32}{getattr(result.params, name):.6g}")
    for title, table in (("fitted rows", fitted), ("held-out rows", held)):
        if table:
            print(f"{title}: abs % error by kind (n, median, worst)")
            for kind, s in table.items():
                median, worst = s["median_abs_pct"], s["max_abs_pct"]
                print(f"  {kind:<10}{s['n']:>5}{median:>9.1f}{worst:>9.1f}")


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def write_calibration(path: str | Path, params, fitted: tuple[str, ...], metadata: dict) -> None:
    """Write the fitted parameters only (plus ``cuda_graphs``, as measured) and metadata.

    Parameters the measurements did not inform are left out, so they keep the cost model's
    documented defaults when the file is read, also when those defaults change later."""
    import yaml

    from simulator.cli.outputs import write_atomic
    from simulator.costmodel.params import CALIBRATION_FORMAT, _plain, _utc_now

    meta = {"format": CALIBRATION_FORMAT, "written_utc": _utc_now(), **metadata}
    values = {name: getattr(params, name) for name in fitted}
    values["cuda_graphs"] = params.cuda_graphs
    doc = {"metadata": _plain(meta), "params": _plain(values)}
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    write_atomic(path, lambda tmp: tmp.write_text(text), "-o")
