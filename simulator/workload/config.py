"""Scenario schema of the ``workload:`` section (pydantic v2, unknown keys rejected).

The workload layer owns this schema; ``simulator.workload.source`` builds the request
source from it (see there for what each option does at run time).
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, ClassVar, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from simulator.errors import UserError
from simulator.specs.strict import StrictModel
from simulator.workload import arrivals
from simulator.workload.arrivals import ArrivalStream

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: Largest support (max - min + 1) of a Zipf distribution: its CDF is tabulated in memory.
MAX_ZIPF_SUPPORT = 10_000_000
#: Largest length (tokens) or duration (seconds) a distribution may name: beyond every
#: context window and simulated span, and exactly representable as a whole number.
MAX_LENGTH = 1e9
MAX_TOKENS = 1_000_000_000
#: Arrival rates (requests per second): from one per 11.6 days to a million per second.
MIN_RATE_PER_S, MAX_RATE_PER_S = 1e-6, 1e6
#: Longest simulated span (s), about 32 years: float seconds still keep microsecond
#: steps apart there.
MAX_SIMULATED_S = 1e9
#: Most requests a run may ask for, and most closed-loop users.
MAX_NUM_REQUESTS = 10**12
MAX_USERS = 1_000_000
Length = Annotated[float, Field(gt=0, le=MAX_LENGTH, allow_inf_nan=False)]
LengthOrZero = Annotated[float, Field(ge=0, le=MAX_LENGTH, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=MIN_RATE_PER_S, le=MAX_RATE_PER_S, allow_inf_nan=False)]
RateOrZero = Annotated[float, Field(ge=0, le=MAX_RATE_PER_S, allow_inf_nan=False)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SIMULATED_S, allow_inf_nan=False)]
SecondsOrZero = Annotated[float, Field(ge=0, le=MAX_SIMULATED_S, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


def _left_default(model: StrictModel, key: str) -> bool:
    """Whether ``model.key`` is unset or equal to its default (a fully resolved scenario,
    as ``servesim show`` writes it, lists the defaults)."""
    default = type(model).model_fields[key].get_default(call_default_factory=True)
    return key not in model.model_fields_set or getattr(model, key) == default


class _Strict(StrictModel):
    """A workload section (unknown keys, wrong types and infinite numbers are errors)."""

    def replace(self, **changes: object) -> Self:
        """A copy with ``changes``, validated again; fields given stay given, the others keep
        their defaults."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self).model_validate({**kept, **changes})


# ---------------------------------------------------------------- lengths and durations


class _Clipped(_Strict):
    """Optional clipping bounds (values below ``min`` become ``min``, above ``max`` ``max``)."""

    min: LengthOrZero | None = None
    max: Length | None = None

    @model_validator(mode="after")
    def _min_not_above_max(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FixedLength(_Clipped):
    """Always ``value``."""

    distribution: Literal["fixed"]
    value: Length


class UniformLength(_Clipped):
    """Every value in [min, max] equally likely (whole numbers for token lengths)."""

    distribution: Literal["uniform"]
    min: LengthOrZero
    max: Length


class NormalLength(_Clipped):
    """Normal(mean, std), truncated below at 1 token (0 s for durations)."""

    distribution: Literal["normal"]
    mean: Length
    std: Length


class LognormalLength(_Clipped):
    """Lognormal whose mean is ``mean`` (tokens or seconds) and log-space std ``sigma``."""

    distribution: Literal["lognormal"]
    mean: Length
    #: Log-space standard deviation; above 10 nearly every draw lands on a clip bound.
    sigma: Annotated[float, Field(gt=0, le=10)]


class ExponentialLength(_Clipped):
    """Exponential with mean ``mean``."""

    distribution: Literal["exponential"]
    mean: Length


class ZipfLength(_Clipped):
    """P(k) proportional to k^-exponent over the whole numbers min (default 1) .. max."""

    distribution: Literal["zipf"]
    exponent: Annotated[float, Field(gt=0, le=1000)]
    max: Length = Field(description="largest value (the support must be bounded)")

    @model_validator(mode="after")
    def _support_not_huge(self):
        support = math.floor(self.max) - max(1, math.ceil(self.min or 1)) + 1
        if support < 1:
            raise ValueError(
                f"zipf support min..max ({self.min}..{self.max}) holds no whole number"
            )
        if support > MAX_ZIPF_SUPPORT:
            raise ValueError(
                f"zipf support of {support} values is too large (at most {MAX_ZIPF_SUPPORT:,})"
            )
        return self


class HistogramConfig(_Strict):
    """Either bins (``edges``, one more than ``counts``; uniform within a bin) or discrete
    ``values`` with ``weights``."""

    edges: list[LengthOrZero] | None = None
    counts: list[NonNegativeFloat] | None = None
    values: list[LengthOrZero] | None = None
    weights: list[NonNegativeFloat] | None = None

    @model_validator(mode="after")
    def _one_form(self):
        binned = self.edges is not None or self.counts is not None
        discrete = self.values is not None or self.weights is not None
        if binned == discrete:
            raise ValueError("give either edges + counts or values + weights")
        if binned:
            if self.edges is None or self.counts is None:
                raise ValueError("edges and counts must be given together")
            if len(self.edges) != len(self.counts) + 1:
                raise ValueError(
                    f"edges has {len(self.edges)} entries; it needs one more than counts "
                    f"({len(self.counts)})"
                )
            if any(b <= a for a, b in itertools.pairwise(self.edges)):
                raise ValueError("edges must increase strictly")
            _positive_total(self.counts, "counts")
        else:
            if self.values is None or self.weights is None:
                raise ValueError("values and weights must be given together")
            if len(self.values) != len(self.weights):
                raise ValueError(
                    f"values ({len(self.values)}) and weights ({len(self.weights)}) "
                    "differ in length"
                )
            _positive_total(self.weights, "weights")
        return self


def _positive_total(numbers: list[float], name: str) -> None:
    if not numbers or sum(numbers) <= 0:
        raise ValueError(f"{name} must sum to a positive number (got {sum(numbers)})")


class EmpiricalLength(_Clipped):
    """Resample recorded values: a list of ``samples``, a ``file`` (one number per line, or
    the named ``column`` of a CSV with header; relative to the scenario file), or a
    ``histogram``."""

    distribution: Literal["empirical"]
    samples: list[LengthOrZero] | None = None
    file: str | None = None
    column: str | None = None
    histogram: HistogramConfig | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("samples", "file", "histogram") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of samples, file, histogram (got {', '.join(given) or 'none'})"
            )
        if self.samples is not None and not self.samples:
            raise ValueError("samples is empty")
        return self


LengthConfig = Annotated[
    FixedLength
    | UniformLength
    | NormalLength
    | LognormalLength
    | ExponentialLength
    | ZipfLength
    | EmpiricalLength,
    Field(discriminator="distribution"),
]
#: A duration in seconds: a number (fixed) or a distribution.
DurationConfig = SecondsOrZero | LengthConfig


# ---------------------------------------------------------------- arrival processes


class _Arrival(_Strict):
    """An arrival process. One with a single mean rate names the field holding it, so a
    planner can read and set that rate."""

    #: Field holding the mean rate (requests/s); None where the process has no single rate.
    rate_key: ClassVar[str | None] = None

    def mean_rate(self) -> float | None:
        """The mean arrival rate (requests/s), or None where the process has no single one."""
        return None if self.rate_key is None else float(getattr(self, self.rate_key))

    def with_rate(self, rate_per_s: float) -> Self:
        """The same process at mean rate ``rate_per_s`` (requests/s)."""
        if self.rate_key is None:
            raise UserError(rate_error(self.process))
        return self.replace(**{self.rate_key: float(rate_per_s)})

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        """The arrival times of an open-loop process, drawn from ``rng``; none at or after
        ``horizon_s`` (the workload's ``duration_s``) is searched for."""
        raise UserError(f"workload.arrival.process: {self.process!r} is not an open-loop process")


class PoissonArrival(_Arrival):
    """Exponential inter-arrival gaps."""

    rate_key: ClassVar[str | None] = "rate_per_s"
    process: Literal["poisson"]
    rate_per_s: Rate

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.poisson(self.rate_per_s, rng)


class GammaArrival(_Arrival):
    """Gamma inter-arrival gaps: mean 1/rate, coefficient of variation ``cv`` (>1 bursty)."""

    rate_key: ClassVar[str | None] = "rate_per_s"
    process: Literal["gamma"]
    rate_per_s: Rate
    cv: Annotated[float, Field(ge=1e-3, le=1e3)]

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.gamma(self.rate_per_s, self.cv, rng)


class ConstantArrival(_Arrival):
    """One request every ``interval_s`` (or 1/``rate_per_s``)."""

    rate_key: ClassVar[str | None] = "rate_per_s"
    process: Literal["constant"]
    rate_per_s: Rate | None = None
    interval_s: Seconds | None = None

    @model_validator(mode="after")
    def _one_of(self):
        if (self.rate_per_s is None) == (self.interval_s is None):
            raise ValueError("give exactly one of rate_per_s, interval_s")
        return self

    def mean_rate(self) -> float:
        return self.rate_per_s if self.rate_per_s is not None else 1.0 / self.interval_s

    def with_rate(self, rate_per_s: float) -> ConstantArrival:
        kept = {k: getattr(self, k) for k in self.model_fields_set - {"interval_s"}}
        return ConstantArrival.model_validate({**kept, "rate_per_s": float(rate_per_s)})

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.constant(self.interval_s or 1.0 / self.rate_per_s, rng)


class RatePoint(_Strict):
    time_s: SecondsOrZero
    rate_per_s: RateOrZero


class TimeVaryingArrival(_Arrival):
    """Non-homogeneous Poisson process following ``points``; the rate holds (``step``) or
    ramps (``linear``) between points, repeats every ``period_s`` if given, else the last
    rate holds forever."""

    process: Literal["time_varying"]
    points: list[RatePoint] = Field(min_length=1)
    interpolation: Literal["step", "linear"] = "step"
    period_s: Seconds | None = None

    @model_validator(mode="after")
    def _check_points(self):
        times = [p.time_s for p in self.points]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError(f"points must have strictly increasing time_s (got {times})")
        if times[0] != 0:
            raise ValueError(f"the first point must be at time_s 0 (got {times[0]})")
        if max(p.rate_per_s for p in self.points) <= 0:
            raise ValueError("at least one point needs rate_per_s > 0")
        if self.period_s is not None and times[-1] >= self.period_s:
            raise ValueError(
                f"every point must lie before period_s ({self.period_s}); last is {times[-1]}"
            )
        return self

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        points = [(p.time_s, p.rate_per_s) for p in self.points]
        linear = self.interpolation == "linear"
        return arrivals.time_varying(points, linear, self.period_s, rng, horizon_s)


class DiurnalArrival(_Arrival):
    """Sinusoidal daily curve: mean ``mean_rate_per_s``, peak / trough = ``peak_to_trough``,
    peak at ``peak_time_s`` into each ``period_s`` (default: 14:00 of a 24 h day)."""

    rate_key: ClassVar[str | None] = "mean_rate_per_s"
    process: Literal["diurnal"]
    mean_rate_per_s: Rate
    peak_to_trough: Annotated[float, Field(ge=1, le=1e6)]
    period_s: Seconds = 86400.0
    peak_time_s: SecondsOrZero = 50400.0

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.diurnal(
            self.mean_rate_per_s,
            self.peak_to_trough,
            self.period_s,
            self.peak_time_s,
            rng,
            horizon_s,
        )


class OnOffArrival(_Arrival):
    """Bursts: ``on_rate_per_s`` for ``on_duration_s``, then ``off_rate_per_s`` for
    ``off_duration_s``, repeating (exponential durations with those means if
    ``random_durations``)."""

    process: Literal["on_off"]
    on_rate_per_s: Rate
    off_rate_per_s: RateOrZero = 0.0
    on_duration_s: Seconds
    off_duration_s: Seconds
    random_durations: bool = False

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.on_off(
            self.on_rate_per_s,
            self.off_rate_per_s,
            self.on_duration_s,
            self.off_duration_s,
            self.random_durations,
            rng,
            horizon_s,
        )


class ClosedLoopArrival(_Arrival):
    """``users`` concurrent users, each sending its next request ``think_time_s`` after the
    previous answer; user start times spread uniformly over ``ramp_up_s``."""

    process: Literal["closed_loop"]
    users: Annotated[int, Field(gt=0, le=MAX_USERS)]
    think_time_s: DurationConfig = 0.0
    ramp_up_s: SecondsOrZero = 0.0


class OfflineArrival(_Arrival):
    """Every request queued at t = 0, as offline benchmarks run (``trtllm-bench throughput``,
    vLLM ``benchmark_throughput``, MLPerf Offline); the run has ``num_requests`` requests and
    its throughput is output tokens over the makespan (first arrival to last completion)."""

    process: Literal["offline"]

    def stream(self, rng: np.random.Generator, horizon_s: float = math.inf) -> ArrivalStream:
        return arrivals.offline()


ArrivalConfig = Annotated[
    PoissonArrival
    | OfflineArrival
    | GammaArrival
    | ConstantArrival
    | TimeVaryingArrival
    | DiurnalArrival
    | OnOffArrival
    | ClosedLoopArrival,
    Field(discriminator="process"),
]


def rate_error(process: str | None) -> str:
    """Why a workload's rate cannot be set: its process has no single rate."""
    rated = [
        cls.model_fields["process"].annotation.__args__[0]
        for cls in _Arrival.__subclasses__()
        if cls.rate_key is not None
    ]
    return (
        f"workload.arrival.process: a rate search needs one of {', '.join(rated)} "
        f"(got {process or 'a trace'})"
    )


# ---------------------------------------------------------------- classes and sessions

SloTarget = dict[Literal["mean", "p50", "p90", "p95", "p99", "p99.9", "max"], PositiveFloat]


class ClassSloConfig(_Strict):
    """Latency targets of one request class, by percentile, e.g. ``ttft_ms: {p99: 500}``."""

    ttft_ms: SloTarget | None = None
    tpot_ms: SloTarget | None = None
    itl_ms: SloTarget | None = None
    e2e_ms: SloTarget | None = None
    #: Relative to the request (DeepSpeed-FastGen's SLA): TTFT per prompt token, and the
    #: largest moving average of its inter-token gaps (``metrics.slo``).
    ttft_per_prompt_token_ms: SloTarget | None = None
    gap_ema_ms: SloTarget | None = None


class RequestClassConfig(_Strict):
    """One class of a weighted mix: its share of arrivals (``weight``), lengths (the
    workload's when omitted), scheduling ``priority`` (larger is more urgent) and SLO."""

    name: Annotated[str, Field(min_length=1)]
    weight: NonNegativeFloat = 1.0
    prompt_tokens: LengthConfig | None = None
    output_tokens: LengthConfig | None = None
    length_correlation: Annotated[float, Field(ge=-1, le=1)] | None = None
    priority: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    slo: ClassSloConfig | None = None
    #: A system prompt shared by every request of the class, put before the drawn prompt
    #: and tagged as a common prefix (a prefix cache keeps it); the workload's when omitted.
    system_prompt_tokens: Tokens | None = None


class SessionConfig(_Strict):
    """Multi-turn conversations. Each arrival starts a conversation of ``turns`` turns; turn
    k+1 arrives ``think_time_s`` after turn k finished, with prompt = turn k's prompt + its
    output + ``followup_tokens`` new tokens (drawn like the prompt when omitted). A
    conversation ends early when its prompt would exceed ``max_context_tokens``."""

    turns: Annotated[int, Field(ge=1, le=100_000)] | LengthConfig = 1
    think_time_s: DurationConfig = 0.0
    followup_tokens: LengthConfig | None = None
    max_context_tokens: Annotated[int, Field(gt=0, le=MAX_TOKENS)] | None = None


class TraceWindow(_Strict):
    """Keep rows with ``start_s`` <= trace time < ``end_s`` (seconds from the first row for
    recorded layouts (azure, burstgpt), else the trace's own seconds)."""

    start_s: NonNegativeFloat = 0.0
    end_s: PositiveFloat | None = None

    @model_validator(mode="after")
    def _ordered(self):
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must exceed start_s ({self.start_s})")
        return self


# ---------------------------------------------------------------- the workload


class WorkloadConfig(_Strict):
    """The traffic of a scenario: synthetic (arrival process + lengths [+ classes,
    sessions]) or replayed from a ``trace`` file."""

    arrival: ArrivalConfig | None = None
    prompt_tokens: LengthConfig | None = None
    output_tokens: LengthConfig | None = None
    length_correlation: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.0, description="normal-copula correlation between prompt and output lengths"
    )
    num_requests: Annotated[int, Field(gt=0, le=MAX_NUM_REQUESTS)] | None = None
    duration_s: Seconds | None = None
    seed: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0
    classes: list[RequestClassConfig] | None = None
    sessions: SessionConfig | None = None
    #: A system prompt (tokens) put before every drawn prompt and shared by all requests:
    #: tagged as a common prefix, so a prefix cache serves it once (per class with classes).
    system_prompt_tokens: Tokens = 0
    trace: str | None = None
    format: Literal["azure", "burstgpt", "servesim"] | None = None
    time_scale: Annotated[float, Field(ge=1e-6, le=1e6)] = Field(
        1.0, description="multiplies trace times: 0.5 replays at twice the rate"
    )
    window: TraceWindow | None = None
    sample: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="fraction of trace rows kept (each row independently, seeded)"
    )
    time_unit: Literal["s", "ms"] | None = Field(
        None, description="unit of relative trace timestamps (default: the format's own)"
    )
    on_bad_row: Literal["error", "skip"] = "error"

    @model_validator(mode="after")
    def _consistent(self):
        self._check_class_names()
        if self.trace is not None:
            self._check_trace_only_settings()
            return self
        trace_only = [k for k in ("format", "window", "time_unit") if getattr(self, k) is not None]
        # set away from their defaults (a fully resolved scenario lists the defaults)
        trace_only += [
            k for k in ("time_scale", "sample", "on_bad_row") if not _left_default(self, k)
        ]
        if trace_only:
            raise ValueError(f"{', '.join(trace_only)} only apply with trace")
        if self.arrival is None:
            raise ValueError("arrival is required unless trace is given")
        if self.arrival.process == "offline" and self.duration_s is not None:
            raise ValueError(
                f"duration_s ({self.duration_s}) does not apply to offline arrivals (every "
                "request arrives at t = 0); give num_requests"
            )
        classes = self.classes or []
        for key in ("prompt_tokens", "output_tokens"):
            if getattr(self, key) is None and (
                not classes or any(getattr(c, key) is None for c in classes)
            ):
                raise ValueError(
                    f"{key} is required (here or in every class) unless trace is given"
                )
        if classes:
            total = sum(c.weight for c in classes)
            if total <= 0:
                raise ValueError(f"classes: weights must sum to a positive number (got {total})")
        if self.num_requests is None and self.duration_s is None:
            self.num_requests = 1000
        return self

    def _check_class_names(self) -> None:
        names = [c.name for c in self.classes or []]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"classes: duplicate names {duplicates}")

    def _check_trace_only_settings(self) -> None:
        """Refuse what a trace replay would ignore: the trace gives every request's arrival
        time, whole prompt (any system prompt included) and output length, and its class
        (the ``class_name`` column); classes only give priorities and SLOs."""
        ignored = [
            k
            for k in ("arrival", "sessions", "prompt_tokens", "output_tokens")
            if getattr(self, k) is not None
        ]
        if not _left_default(self, "length_correlation"):
            ignored.append(f"length_correlation ({self.length_correlation})")
        if self.system_prompt_tokens:
            ignored.append(f"system_prompt_tokens ({self.system_prompt_tokens})")
        for c in self.classes or []:
            ignored += [
                f"classes.{c.name}.{k}"
                for k in ("prompt_tokens", "output_tokens", "length_correlation")
                if getattr(c, k) is not None
            ]
            if c.system_prompt_tokens:
                ignored.append(f"classes.{c.name}.system_prompt_tokens ({c.system_prompt_tokens})")
            # Shares of a replay are the trace's; a weight would be silently ignored.
            if not _left_default(c, "weight"):
                ignored.append(f"classes.{c.name}.weight ({c.weight})")
        if ignored:
            raise ValueError(
                "trace replay takes arrivals, prompt lengths (a system prompt included), output "
                "lengths and each request's class from the trace; a class gives only its "
                "priority and slo there; remove " + ", ".join(ignored)
            )

    def mean_rate(self) -> float | None:
        """The mean arrival rate (requests/s), or None where it has no single rate (traces,
        schedules, closed loops)."""
        return None if self.arrival is None else self.arrival.mean_rate()

    def with_rate(self, rate_per_s: float) -> WorkloadConfig:
        """The same traffic at mean rate ``rate_per_s`` (requests/s)."""
        if self.arrival is None:
            raise UserError(rate_error(None))
        return self.replace(arrival=self.arrival.with_rate(rate_per_s))

    def class_slos(self) -> dict[str, dict[str, dict[str, float]]]:
        """Each class's own SLO as ``{class: {metric: {percentile: ms}}}`` (classes without
        one left out), in the shape of the scenario's ``slo:``."""
        return {c.name: c.slo.model_dump(exclude_none=True) for c in self.classes or [] if c.slo}
