"""Schema of the ``plan:`` and ``search:`` sections of a scenario (what ``servesim plan``
finds for the deployment, and which configurations it compares)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from simulator.config.base import SLO_METRICS, SLO_PERCENTILES
from simulator.specs.dtypes import canonical_dtype
from simulator.specs.strict import StrictModel
from simulator.workload.config import MAX_RATE_PER_S, MIN_RATE_PER_S

PRICE_KINDS = ("on_demand", "reserved", "spot")
#: Most simulations per rate, and most configurations a search compares.
MAX_REPLICATIONS = 100
MAX_SEARCH_POINTS = 10_000
#: Most requests per replica a planning point may simulate (its run length and budget).
MAX_REQUESTS_PER_REPLICA = 1_000_000
#: A planned rate is a workload's arrival rate: the same bounds (requests/s).
Rate = Annotated[float, Field(ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S)]


class _Strict(StrictModel):
    """A planning section (unknown keys, wrong types and infinite numbers are errors)."""


class TcoConfig(_Strict):
    """Cost-of-ownership settings; unset values come from hardware_specs/prices.yaml."""

    #: Which cloud price sets the rented option ($/GPU-hour, cheapest row of that kind).
    price_kind: Literal["on_demand", "reserved", "spot"] = "on_demand"
    #: Price of one owned machine with its GPUs (a server, workstation or Mac), for any
    #: GPU; with ``gpus_per_server`` the GPUs it holds.
    server_price_usd: PositiveFloat | None = None
    gpus_per_server: PositiveInt | None = None
    #: Where owned machines run: "datacenter" (colocation per kW, PUE, industrial
    #: electricity) or "office" (no hosting fee, PUE 1, commercial electricity); default:
    #: servers in a data centre, workstations and Macs in an office.
    hosting: Literal["datacenter", "office"] | None = None
    life_years: PositiveFloat | None = None
    electricity_usd_per_kwh: float | None = Field(None, ge=0.0)
    pue: float | None = Field(None, ge=1.0)
    hosting_usd_per_kw_month: float | None = Field(None, ge=0.0)
    staff_usd_per_month: float = Field(0.0, ge=0.0)
    #: GPU draw idle and busy as fractions of TDP (see planning.tco).
    idle_power_fraction: float | None = Field(None, ge=0.0, le=1.0)
    busy_power_fraction: float | None = Field(None, gt=0.0, le=1.5)
    #: Share of input tokens billed as API cache hits; default: the run's prefix-cache hits.
    cached_input_fraction: float | None = Field(None, ge=0.0, le=1.0)


class PlanConfig(_Strict):
    """What ``servesim plan`` looks for, and how hard it searches."""

    #: Rate (requests/s) the deployment must serve: find the fewest replicas that do.
    target_rate_per_s: Rate | None = None
    #: Replications simulated first at every point (rate, replicas), each with its own seed
    #: (workload.seed + i); more are added while the point's verdict is uncertain.
    replications: Annotated[int, Field(gt=0, le=MAX_REPLICATIONS)] = 1
    #: Fewest requests every replication simulates per replica: a fleet is judged on as
    #: much traffic per replica as a single replica (``workload.num_requests`` is a minimum
    #: too).
    min_requests_per_replica: Annotated[int, Field(gt=0, le=MAX_REQUESTS_PER_REPLICA)] = 1000
    #: Budget of a point: replications are added while its verdict is uncertain (its SLO
    #: intervals straddle their thresholds) until it has simulated this many requests per
    #: replica; then it is reported uncertain.
    max_requests_per_replica: Annotated[int, Field(gt=0, le=MAX_REQUESTS_PER_REPLICA)] = 24000
    #: The rate search stops when its bracket [meets, fails] is narrower than this
    #: fraction of the lower end.
    rate_tolerance: float = Field(0.05, gt=0.0, lt=1.0)
    #: First rate tried (requests/s); default: the scenario's own rate.
    start_rate_per_s: Rate | None = None
    #: Additionally required: this fraction of requests meets every SLO threshold.
    min_attainment: float | None = Field(None, gt=0.0, le=1.0)
    #: Largest fraction of requests that may be rejected (too long to ever fit).
    max_rejected_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    #: Simulated arrival period of every run (s): at high rates a fixed ``num_requests``
    #: lasts too short a time to tell a growing queue from a long one, so runs get
    #: ``rate × min_arrival_span_s`` requests when that is more. Unset: ``num_requests``.
    min_arrival_span_s: Annotated[float, Field(gt=0, le=1e9)] | None = None
    #: Largest fleet the replica search tries.
    max_replicas: Annotated[int, Field(gt=0, le=10_000)] = 256
    #: Monthly cost options (cloud, owned, API) of the planned deployment.
    #: Headroom for the model's own error (fraction): the fewest-replica search serves
    #: target × (1 + margin), and the maximum rate is also given divided by (1 + margin).
    #: Unset: the validated step-time error of the cost model (median over held-out
    #: measurements, hardware_specs/calibration/error_band.yaml); 0: no margin.
    safety_margin: float | None = Field(None, ge=0.0, lt=1.0)
    tco: TcoConfig = Field(default_factory=TcoConfig)


class SearchConfig(_Strict):
    """Axes of the configuration search; an axis left out keeps the scenario's value."""

    gpus: list[str] | None = None
    tensor_parallel: list[PositiveInt] | None = None
    #: Pipeline stages per replica ("not modelled" where the scenario schema lacks them).
    pipeline_parallel: list[PositiveInt] = Field(default_factory=lambda: [1])
    #: Expert groups per replica, MoE models only ("not modelled" where the schema lacks them).
    expert_parallel: list[PositiveInt] = Field(default_factory=lambda: [1])
    batching: list[str] | None = None
    weight_dtype: list[str] | None = None
    kv_dtype: list[str] | None = None
    max_num_seqs: list[PositiveInt] | None = None
    #: Which cloud price of prices.yaml sets $/GPU-hour (the cheapest row of that kind).
    price_kind: Literal["on_demand", "reserved", "spot"] = "on_demand"
    #: $/GPU-hour per GPU name, overriding prices.yaml.
    gpu_hour_usd: dict[str, float] = Field(default_factory=dict)
    #: Latency axis of the cost-latency Pareto frontier: "metric.statistic" of the summary.
    latency: str = "e2e_ms.p50"
    #: Replications of each candidate's rate search (1 keeps a large search fast).
    replications: Annotated[int, Field(gt=0, le=MAX_REPLICATIONS)] = 1
    #: Candidates simulated between two pruning decisions (1: prune as much as possible);
    #: default: the local worker count, or 8 on a Dask cluster. The same batch size gives the
    #: same results on any executor.
    batch_size: Annotated[int, Field(gt=0, le=MAX_SEARCH_POINTS)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> SearchConfig:
        axes = (
            self.gpus,
            self.tensor_parallel,
            self.pipeline_parallel,
            self.expert_parallel,
            self.batching,
            self.weight_dtype,
            self.kv_dtype,
            self.max_num_seqs,
        )
        points = math.prod(len(axis) for axis in axes if axis)
        if points > MAX_SEARCH_POINTS:
            raise ValueError(
                f"{points:,} configurations to compare; a search has at most {MAX_SEARCH_POINTS:,}"
            )
        return self

    @field_validator("gpus")
    @classmethod
    def _catalog_spelling(cls, values: list[str] | None) -> list[str] | None:
        """GPU names as the catalog spells them (prices and calibrations are found so); an
        unknown name stays, to become an infeasible configuration with its reason."""
        from simulator.specs.catalog import gpu_catalog_spelling

        return None if values is None else [gpu_catalog_spelling(v) for v in values]

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtypes(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        return [canonical_dtype(v) for v in values]

    @field_validator("gpu_hour_usd")
    @classmethod
    def _non_negative(cls, prices: dict[str, float]) -> dict[str, float]:
        from simulator.specs.catalog import gpu_catalog_spelling

        for gpu, price in prices.items():
            if price < 0:
                raise ValueError(f"{gpu}: price {price} must be >= 0")
        return {gpu_catalog_spelling(gpu): price for gpu, price in prices.items()}

    @field_validator("latency")
    @classmethod
    def _known_latency(cls, value: str) -> str:
        metric, _, stat = value.partition(".")
        if metric not in SLO_METRICS or stat not in SLO_PERCENTILES:
            raise ValueError(
                f"{value!r}: expected metric.statistic with metric in {', '.join(SLO_METRICS)} "
                f"and statistic in {', '.join(SLO_PERCENTILES)}"
            )
        return value
