"""The scenario schema: what a YAML what-if describes, validated with pydantic.

Each section's model lives with the layer that owns it (``hardware.py``, ``engine.py``,
``deployment.py`` here, the workload's in ``simulator.workload.config``, the batching
policies' in ``simulator.policies``). Checks across sections run here, once for every
group of replicas: the model's shape against the parallel layout, catalog names of the
groups. Checks that need the cost model (does the model fit in memory) run when the
scenario is compiled.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PositiveFloat,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from simulator.config.base import MAX_REPLICAS, SLO_PERCENTILES, Seconds, StrictModel
from simulator.config.deployment import (
    DisaggregatedConfig,
    GroupConfig,
    GroupSettings,
    RoutingConfig,
    replica_groups,
)
from simulator.config.engine import EngineConfig, SpeculativeConfig
from simulator.config.hardware import AutoscaleConfig, HardwareConfig, OffloadConfig
from simulator.config.planning import PlanConfig, SearchConfig
from simulator.errors import UserError
from simulator.specs.strict import validation_messages
from simulator.workload.config import (
    MAX_NUM_REQUESTS,
    MAX_RATE_PER_S,
    MIN_RATE_PER_S,
    WorkloadConfig,
)

__all__ = [
    "AutoscaleConfig",
    "CostConfig",
    "DisaggregatedConfig",
    "EngineConfig",
    "GroupConfig",
    "HardwareConfig",
    "OffloadConfig",
    "OutputConfig",
    "RoutingConfig",
    "Scenario",
    "SpeculativeConfig",
]


class CostConfig(StrictModel):
    #: Price of one GPU-hour (USD) for cost per token; unset: cost is not reported.
    gpu_hour_usd: float | None = Field(None, ge=0.0, le=1e6)


class OutputConfig(StrictModel):
    #: Spacing of the time-series samples per replica (simulated seconds).
    timeseries_interval_s: float = Field(0.5, ge=1e-3, le=1e9)
    #: Requests arriving before this time are left out of the summary (simulated seconds).
    warmup_s: Seconds = 0.0


class Scenario(StrictModel):
    """A whole what-if: model, hardware, engine, traffic, latency targets and prices."""

    name: str = "scenario"
    description: str = ""
    model: str
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    #: Heterogeneous fleet: replica groups of different GPUs behind one router (replaces
    #: the single group described by ``hardware``).
    fleet: list[GroupConfig] | None = None
    #: Disaggregated serving: a prefill pool and a decode pool (replaces the single group
    #: described by ``hardware``).
    disaggregated: DisaggregatedConfig | None = None
    workload: WorkloadConfig
    #: Latency targets: metric -> {percentile: threshold in ms}, e.g. {ttft_ms: {p99: 1000}}.
    slo: dict[
        Literal["ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "ttft_per_prompt_token_ms", "gap_ema_ms"],
        dict[str, PositiveFloat],
    ] = Field(default_factory=dict)
    cost: CostConfig = Field(default_factory=CostConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    #: What ``servesim plan`` finds for this deployment (ignored by ``simulate``).
    plan: PlanConfig | None = None
    #: Configurations ``servesim plan`` compares (ignored by ``simulate``).
    search: SearchConfig | None = None
    _groups: list[GroupSettings] = PrivateAttr(default_factory=list)
    #: Folder that relative paths in the scenario (traces, calibration files) resolve from:
    #: the scenario file's folder, given by the loader; otherwise the working directory.
    base_dir: SkipJsonSchema[Path] = Field(default_factory=Path.cwd, exclude=True, repr=False)

    # ------------------------------------------------------------- variants
    def with_rate(self, rate_per_s: float) -> Scenario:
        """The same scenario with arrivals at mean rate ``rate_per_s`` (requests/s)."""
        call = f"with_rate(rate_per_s={rate_per_s!r})"
        allowed = f"a number of requests/s from {MIN_RATE_PER_S:g} to {MAX_RATE_PER_S:g}"
        if isinstance(rate_per_s, bool) or not isinstance(rate_per_s, numbers.Real):
            raise InvalidValue(f"{call}: expected {allowed}")
        workload = _checked(
            call, allowed, "workload.arrival", lambda: self.workload.with_rate(rate_per_s)
        )
        return self.replace(workload=workload)

    def with_replicas(self, replicas: int) -> Scenario:
        """The same scenario with ``replicas`` identical replicas."""
        hardware = _checked(
            f"with_replicas(replicas={replicas!r})",
            f"a whole number from 1 to {MAX_REPLICAS}",
            "hardware",
            lambda: self.hardware.replace(replicas=replicas),
        )
        return self.replace(hardware=hardware)

    def with_seed_offset(self, offset: int) -> Scenario:
        """The same scenario with workload seed ``seed + offset`` (another replication)."""
        call = f"with_seed_offset(offset={offset!r})"
        allowed = "a whole number keeping workload.seed from 0 to 2**64 - 1"
        if isinstance(offset, bool) or not isinstance(offset, numbers.Integral):
            raise InvalidValue(f"{call}: expected {allowed}")
        if not offset:
            return self
        seed = self.workload.seed + int(offset)
        workload = _checked(call, allowed, "workload", lambda: self.workload.replace(seed=seed))
        return self.replace(workload=workload)

    def with_num_requests(self, num_requests: int) -> Scenario:
        """The same scenario with ``num_requests`` requests."""
        workload = _checked(
            f"with_num_requests(num_requests={num_requests!r})",
            f"a whole number from 1 to {MAX_NUM_REQUESTS:,}",
            "workload",
            lambda: self.workload.replace(num_requests=num_requests),
        )
        return self.replace(workload=workload)

    @field_validator("slo")
    @classmethod
    def _known_percentiles(cls, value: dict) -> dict:
        for metric, targets in value.items():
            for key in targets:
                if key not in SLO_PERCENTILES:
                    raise ValueError(
                        f"{metric}.{key}: unknown percentile; allowed: {', '.join(SLO_PERCENTILES)}"
                    )
        return value

    @property
    def deployment_mode(self) -> str | None:
        """``"fleet"`` or ``"disaggregated"`` where the scenario deploys one, else None
        (identical replicas of the ``hardware`` section)."""
        return "fleet" if self.fleet else "disaggregated" if self.disaggregated else None

    @property
    def groups(self) -> list[GroupSettings]:
        """Every group of replicas with its own hardware and engine settings resolved."""
        return self._groups

    @field_validator("fleet")
    @classmethod
    def _fleet_has_groups(cls, value: list[GroupConfig] | None) -> list[GroupConfig] | None:
        """An empty fleet would deploy the ``hardware`` section without a word."""
        if value is not None and not value:
            raise ValueError(
                "an empty list has no group of replicas; list at least one group "
                "({gpu: ..., replicas: ...}), or leave fleet out to deploy the hardware section"
            )
        return value

    @model_validator(mode="after")
    def _groups_count_their_own_replicas(self) -> Scenario:
        """A fleet group or pool sets its own replica count (default 1): a count in the
        ``hardware`` section would be ignored without a word."""
        mode = self.deployment_mode
        if mode and self.hardware.replicas != 1:  # 1, a group's default, changes nothing
            what = "fleet group" if mode == "fleet" else "pool"
            raise ValueError(
                f"hardware.replicas: {self.hardware.replicas} is not used with {mode}: each "
                f"{what} sets its own replicas (default 1); remove it and set them there"
            )
        return self

    @model_validator(mode="after")
    def _classes_listed(self) -> Scenario:
        """An empty list of classes would run every request alike without a word."""
        if self.workload.classes is not None and not self.workload.classes:
            raise ValueError(
                "workload.classes: an empty list has no class; list at least one class "
                "({name: ..., weight: ...}), or leave classes out (every request alike)"
            )
        return self

    @model_validator(mode="after")
    def _offline_takes_no_warmup(self) -> Scenario:
        if self._offline() and self.output.warmup_s:
            raise ValueError(
                f"output.warmup_s: {self.output.warmup_s} does not apply to offline arrivals "
                "(their throughput is over the whole makespan); remove it"
            )
        return self

    @model_validator(mode="after")
    def _offline_takes_no_feedback(self) -> Scenario:
        """Offline arrivals queue every request at t = 0: nothing arrives later, so neither
        a session's next turn (it follows the previous answer) nor a new replica (it
        follows the load) has a time to happen."""
        if not self._offline():
            return self
        if self.workload.sessions is not None:
            raise ValueError(
                "workload.sessions: multi-turn sessions do not apply to workload.arrival."
                "process: offline (every request is queued at t = 0, but a follow-up turn "
                "arrives after the previous answer); remove sessions, or use an arrival "
                "process in time (poisson, closed_loop, ...)"
            )
        if self.hardware.autoscale is not None:
            raise ValueError(
                "hardware.autoscale: autoscaling does not apply to workload.arrival.process: "
                "offline (every request is queued at t = 0 on the replicas serving then, so a "
                "replica started later gets none); remove autoscale and set hardware.replicas, "
                "or use an arrival process in time"
            )
        return self

    def _offline(self) -> bool:
        arrival = self.workload.arrival
        return arrival is not None and arrival.process == "offline"

    @model_validator(mode="before")
    @classmethod
    def _disaggregated_out_of_engine(cls, data: Any) -> Any:
        """``engine: {batching: disaggregated, prefill, decode, kv_link}`` (the older form) is
        read as the ``disaggregated:`` section."""
        engine = data.get("engine") if isinstance(data, dict) else None
        if not isinstance(engine, dict):
            return data
        batching = engine.get("batching")
        named = batching.get("policy") if isinstance(batching, dict) else batching
        pools = [k for k in ("prefill", "decode", "kv_link") if k in engine]
        if named != "disaggregated":
            if pools:
                raise ValueError(
                    f"engine.{pools[0]}: disaggregated pools are described under "
                    "disaggregated: {prefill: ..., decode: ..., kv_link: ...}"
                )
            return data
        if "disaggregated" in data or not {"prefill", "decode"} <= set(pools):
            raise ValueError(
                "engine.batching: 'disaggregated' is a deployment mode, not a batching policy: "
                "describe the pools under disaggregated: {prefill: ..., decode: ...}"
            )
        engine = {k: v for k, v in engine.items() if k not in ("batching", "batching_options")}
        moved = {k: engine.pop(k) for k in pools}
        return {**data, "engine": engine, "disaggregated": moved}

    @model_validator(mode="after")
    def _groups_fit_the_model(self) -> Scenario:
        """Resolve every group of replicas and check it against the model: the layout
        rules of ``ModelSpec.layout_errors`` and the catalog names of its GPUs and links."""
        if self.fleet and self.disaggregated is not None:
            raise ValueError("fleet and disaggregated: give one deployment mode, not both")
        if self.hardware.autoscale is not None and (self.fleet or self.disaggregated):
            raise ValueError(
                "hardware.autoscale: applies to one group of replicas, not to a "
                "fleet or a disaggregated deployment"
            )
        self._groups, problems = replica_groups(
            self.hardware, self.engine, self.fleet, self.disaggregated
        )
        for group in self._groups:
            problems += _group_problems(self.model, group)
        if self.engine.speculative is not None and self.engine.speculative.draft_model:
            problems += _catalog_problems(
                "engine.speculative.draft_model", self.engine.speculative.draft_model, "model"
            )
        if self.disaggregated is not None and self.disaggregated.kv_link is not None:
            problems += _catalog_problems(
                "disaggregated.kv_link", self.disaggregated.kv_link, "link"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class InvalidValue(UserError, ValueError):
    """A value a scenario variant (``with_rate``, ``with_replicas``, ...) does not allow;
    a ``ValueError`` too, as pydantic's validation error was."""


def _checked(call: str, allowed: str, section: str, make: Callable[[], Any]) -> Any:
    """``make()``, the new ``section`` of a variant; its validation errors raised as one
    ``InvalidValue`` naming the call, the field and what is allowed."""
    try:
        return make()
    except ValidationError as exc:
        problems = "; ".join(validation_messages(exc, None, section))
        raise InvalidValue(f"{call}: {problems}; allowed: {allowed}") from None


def _catalog_problems(where: str, name: str, kind: str) -> list[str]:
    from simulator.specs.catalog import load_gpu, load_link, load_model

    loader = {"model": load_model, "gpu": load_gpu, "link": load_link}[kind]
    try:
        loader(name)
    except UserError as exc:
        return [f"{where}: {m}" for m in exc.messages]
    return []


def _group_problems(model_name: str, group: GroupSettings) -> list[str]:
    """What is wrong with one group of replicas of ``model_name`` (empty: nothing)."""
    from simulator.specs.catalog import load_model

    hw = group.hardware
    problems = []
    if group.where != "hardware":  # the hardware section's names are checked by the loader
        problems += _catalog_problems(f"{group.where}.gpu", hw.gpu, "gpu")
        if hw.interconnect is not None:
            problems += _catalog_problems(f"{group.where}.interconnect", hw.interconnect, "link")
    try:
        model = load_model(model_name)
    except UserError:  # reported by the loader's own name check
        return problems
    for message in model.layout_errors(
        hw.tensor_parallel, hw.pipeline_parallel, hw.expert_parallel
    ):
        field = message.partition(":")[0]
        section = group.where if field == "tensor_parallel" else "hardware"
        problems.append(f"{section}.{message}")
    return problems
