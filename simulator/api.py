"""Python API: load a scenario, build its simulation, run it, get DataFrames back."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.config.compile import compile_scenario, cost_model, replica_memory_plan
from simulator.config.compile import resolve_calibration as hardware_calibration
from simulator.config.loader import (
    as_scenario,
    load_scenario,
    require_scenario,
    scenario_from_dict,
)
from simulator.config.scenario import Scenario
from simulator.costmodel import CostModel, CostParams, MemoryPlan
from simulator.engine.gap_ema import GAP_EMA_SPAN
from simulator.engine.ledger import RecordSink
from simulator.engine.simulation import Simulation
from simulator.metrics import RunRecords, Summary, summarize
from simulator.specs.catalog import specs_dir
from simulator.specs.files import read_yaml
from simulator.workload import build_source

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Result", "build_simulation", "load_scenario", "run", "scenario_from_dict"]


def resolve_calibration(scenario: Scenario) -> tuple[CostParams, str]:
    """Cost-model parameters for the scenario's GPU and where they came from."""
    require_scenario(scenario, "resolve_calibration")
    return hardware_calibration(scenario.hardware, scenario.base_dir)


def resolve_pricing(scenario: Scenario):
    """What one replica of the scenario is priced with (``costmodel.pricing.Pricing``):
    parameters, the engine's kernel tables and where each came from."""
    from simulator.config.compile import resolve_pricing as resolve

    require_scenario(scenario, "resolve_pricing")
    return resolve(scenario.hardware, scenario.engine, scenario.base_dir)


def pricing_description(scenario: Scenario) -> dict | None:
    """The summary's ``pricing`` entry: engine, version and the kernels that priced the
    scenario's replicas (its own hardware and engine sections)."""
    from simulator.errors import UserError

    try:
        return resolve_pricing(scenario).describe()
    except UserError:
        return None


def build_cost_model(scenario: Scenario) -> CostModel:
    """The step-time model of one replica of the scenario (its ``hardware`` and ``engine``
    sections: TP × PP × EP GPUs, offload)."""
    require_scenario(scenario, "build_cost_model")
    return cost_model(scenario.model, scenario.hardware, scenario.engine, scenario.base_dir)


def build_memory_plan(scenario: Scenario) -> MemoryPlan:
    """Memory of the most loaded GPU of a replica: weights, workspace and the KV cache left."""
    require_scenario(scenario, "build_memory_plan")
    return replica_memory_plan(scenario.model, scenario.hardware, scenario.engine)


def build_simulation(
    scenario: Scenario | str | Path,
    progress: Callable[[int], None] | None = None,
    trace_steps: bool = False,
    records_out: RecordSink | None = None,
    exact_requests: int | None = None,
) -> Simulation:
    """Turn a validated scenario (or a scenario file path) into a ready-to-run simulation
    (checks the memory fit). ``records_out`` receives the per-request records chunk by
    chunk as they settle. Up to ``exact_requests`` requests (default
    ``metrics.sketch.EXACT_REQUESTS``) are kept and summarised exactly; a longer run is
    summarised through sketches (``metrics.sketch``)."""
    from simulator.metrics.sketch import EXACT_REQUESTS, RequestSketch

    scenario = as_scenario(scenario, "build_simulation")
    workload = scenario.workload
    classes = workload.classes or []
    sketch = RequestSketch(
        scenario.slo or None,
        {c.name: c.slo.model_dump(exclude_none=True) for c in classes if c.slo} or None,
        scenario.output.warmup_s,
        offline=workload.arrival is not None and workload.arrival.process == "offline",
    )
    return Simulation(
        compile_scenario(scenario),
        build_source(workload, base_dir=scenario.base_dir),
        sample_interval_s=scenario.output.timeseries_interval_s,
        progress=progress,
        trace_steps=trace_steps,
        # per-class inter-token gaps cost a little per step: only when there are classes
        itl_per_class=bool((workload.classes and len(workload.classes) > 1) or workload.trace),
        records_out=records_out,
        sketch=sketch,
        exact_requests=EXACT_REQUESTS if exact_requests is None else exact_requests,
        # each request's moving average of its gaps, only when an SLO asks for it
        gap_ema_span=GAP_EMA_SPAN if _constrains(scenario, "gap_ema_ms") else None,
    )


def _constrains(scenario: Scenario, metric: str) -> bool:
    """Whether the scenario's SLO, or a class's, sets a target on ``metric``."""
    classes = scenario.workload.classes or []
    return metric in (scenario.slo or {}) or any(
        c.slo is not None and getattr(c.slo, metric, None) for c in classes
    )


@dataclass
class Result:
    """Outcome of one simulated run."""

    scenario: Scenario
    records: RunRecords
    summary_obj: Summary

    @property
    def summary(self) -> dict:
        return self.summary_obj.to_dict()

    @property
    def requests(self) -> pd.DataFrame:
        import pandas as pd

        r = self.records.requests
        return pd.DataFrame(
            {
                "request_id": r.request_id,
                "class_name": r.class_name,
                "arrival_s": r.arrival_s,
                "first_token_s": r.first_token_s,
                "finish_s": r.finish_s,
                "prompt_tokens": r.prompt_tokens,
                "output_tokens": r.output_tokens,
                "replica": r.replica,
                "rejected": r.rejected,
                "reject_reason": r.reject_reason,
            }
        )

    @property
    def timeseries(self) -> pd.DataFrame:
        import pandas as pd

        t = self.records.timeseries
        return pd.DataFrame(
            {
                "time_s": t.time_s,
                "replica": t.replica,
                "waiting": t.waiting,
                "running": t.running,
                "kv_used_fraction": t.kv_used_fraction,
                "batch_tokens": t.batch_tokens,
            }
        )


def run(scenario: Scenario | str | Path, progress: Callable[[int], None] | None = None) -> Result:
    """Simulate a scenario (object or YAML path) and summarise it."""
    scenario = as_scenario(scenario, "run")
    records = build_simulation(scenario, progress=progress).run()
    return Result(scenario, records, summarize_run(scenario, records))


def summarize_run(scenario: Scenario, records: RunRecords) -> Summary:
    """The scenario's summary of a finished run (its SLOs, per-class SLOs and GPU price)."""
    from simulator.metrics.window import STEADY_PROCESSES

    classes = scenario.workload.classes or []
    class_slos = {c.name: c.slo.model_dump(exclude_none=True) for c in classes if c.slo}
    arrival = scenario.workload.arrival
    summary = summarize(
        records,
        slo=scenario.slo or None,
        gpu_hour_usd=scenario.cost.gpu_hour_usd,
        warmup_s=scenario.output.warmup_s,
        class_slos=class_slos or None,
        steady_traffic=arrival is not None and arrival.process in STEADY_PROCESSES,
        offline=arrival is not None and arrival.process == "offline",
        window_s=_window_s(scenario, records),
    )
    groups = pricing_by_group(scenario)
    if groups:  # the hardware section itself may price no replica of a fleet
        summary.pricing_by_group = groups
        summary.pricing, summary.step_time_error_band = (
            groups[0]["pricing"],
            groups[0]["error_band"],
        )
    else:
        summary.step_time_error_band = error_band_for(scenario)
        summary.pricing = pricing_description(scenario)
    summary.trace = records.input_rows
    return summary


def _window_s(scenario: Scenario, records: RunRecords) -> float | None:
    """Length of the summary's windows: for changing traffic (not steady, not offline), an
    hour of a daily cycle (its period / 24), else a round length (``metrics.per_window``)."""
    from simulator.metrics.per_window import default_window_s
    from simulator.metrics.window import STEADY_PROCESSES

    arrival = scenario.workload.arrival
    if arrival is not None and arrival.process in (*STEADY_PROCESSES, "offline"):
        return None
    req = records.requests
    if not len(req):
        return None
    span = float(req.arrival_s.max() - req.arrival_s.min())
    return default_window_s(getattr(arrival, "period_s", None), span)


def error_band_for(scenario: Scenario) -> dict | None:
    """The validated error band of the scenario's GPU and engine (``metrics.error_band``):
    held-out where calibrated, the datasheet band where not, saying which."""
    require_scenario(scenario, "error_band_for")
    return _error_band_of(scenario.model, scenario.hardware, scenario.engine, scenario.base_dir)


def _error_band_of(model: str, hw, eng, base_dir: Path) -> dict | None:
    """The error band of one replica kind: ``hw`` and ``eng``, resolved settings."""
    from simulator.config.compile import resolve_pricing as resolve
    from simulator.costmodel.pricing import engine_calibration_path
    from simulator.errors import UserError
    from simulator.metrics.error_band import error_band
    from simulator.specs.catalog import load_model

    key = (hw.gpu, hw.calibration, eng.profile, eng.version, eng.weight_dtype, model, str(base_dir))
    if key not in _ERROR_BANDS:  # the calibration files are parsed once per process
        try:
            pricing = resolve(hw, eng, base_dir)
        except UserError:
            return None
        source = pricing.parameters
        calibration = None if source == "datasheet defaults" else source
        kernels = pricing.kernels
        engine_file = (
            engine_calibration_path(kernels.engine, kernels.gpu, kernels.version)
            if kernels is not None
            else None
        )
        _ERROR_BANDS[key] = error_band(
            specs_dir(),
            hw.gpu,
            eng.profile,
            calibration,
            engine_file,
            eng.weight_dtype,
            moe=load_model(model).is_moe,
        )
    return _ERROR_BANDS[key]


def pricing_by_group(scenario: Scenario) -> list[dict] | None:
    """What priced each group of a fleet or disaggregated deployment, and its error band
    (None for a deployment of the ``hardware`` section alone)."""
    from simulator.config.compile import resolve_pricing as resolve
    from simulator.errors import UserError

    groups = scenario.groups
    if len(groups) == 1 and groups[0].where == "hardware":
        return None
    out = []
    for g in groups:
        try:
            pricing = resolve(g.hardware, g.engine, scenario.base_dir).describe()
        except UserError:
            pricing = None
        band = _error_band_of(scenario.model, g.hardware, g.engine, scenario.base_dir)
        out.append({"group": g.name, "role": g.role, "pricing": pricing, "error_band": band})
    return out


#: Error bands by (GPU, calibration, engine profile, base folder).
_ERROR_BANDS: dict[tuple, dict | None] = {}


def validated_error_band() -> dict | None:
    """Held-out step-time error of the cost model, written by ``benchmarks/validation.py``
    (``hardware_specs/calibration/error_band.yaml``); None when absent."""
    path = specs_dir() / "calibration" / "error_band.yaml"
    try:
        stat = path.stat()
    except OSError:
        return None
    band = _error_band(path, stat.st_mtime_ns, stat.st_size)
    return None if band is None else dict(band)


@functools.lru_cache(maxsize=4)
def _error_band(path: Path, mtime_ns: int, size: int) -> dict | None:
    """The error band file's content, read again only when the file changes."""
    if not path.is_file():
        return None
    data = read_yaml(path, "error band file")
    return {**data["step_time"], "source": data.get("source", str(path))}
